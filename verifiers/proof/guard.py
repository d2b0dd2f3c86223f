"""What model text may be before it reaches Coq: one tactic expression, nothing else.

The environment sends a model's tactic as ``Timeout N (TACTIC).``, so the text is parsed as
one Ltac expression, never as a vernacular command. This module refuses, before that, any
text that could end the sentence early or smuggle an assumption in, whatever the model
writes (spec 04 §2 drops ``sorry`` / ``admit``; issue 13 lists the rest): sentence ends,
comments, strings, unbalanced parentheses, placeholders (``admit``, ``give_up``), and every
vernacular keyword that could declare, assume, load or reconfigure something. The final
check (``Print Assumptions``) is the second line of defence.
"""

from __future__ import annotations

import re

MAX_TACTIC_CHARS = 600

VERNACULAR = frozenset("""
Admitted Admit Abort Axiom Axioms Parameter Parameters Conjecture Hypothesis Hypotheses Variable
Variables Context Declare Local Global Require Import Export Load Set Unset Opaque Transparent
Theorem Lemma Fact Remark Corollary Proposition Example Goal Definition Fixpoint CoFixpoint
Inductive CoInductive Record Structure Class Instance Existing Program Obligation Obligations Qed
Defined Save Proof Ltac Ltac2 Tactic Notation Infix Module Section End Reset Back BackTo Undo
Restart Drop Timeout Fail Redirect Extraction Time Add Remove Print Search Check Eval Compute
About Locate Unshelve Universe Universes Polymorphic Monomorphic Primitive Register Canonical
Coercion Arguments Implicit Generalizable Hint Hints Create Strategy Attributes Opaque Typeclasses
""".split())
"""Vernacular keywords (case-sensitive, as Coq spells them) refused anywhere in model text."""

UNSOUND_TACTICS = frozenset("""
admit give_up native_compute native_cast_no_check vm_cast_no_check change_no_check
exact_no_check
""".split())
"""Tactics that leave a goal assumed or skip the kernel's check."""

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_']*")
_SENTENCE_END = re.compile(r"\.(\s|$)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_']{0,40}")


class TacticRefused(ValueError):
    """Model text that is not a single admissible tactic; the message says why."""


def normalize_tactic(text: str) -> str:
    """The tactic in ``text`` without its final period and surrounding blanks (refused when
    it is not one admissible tactic expression)."""
    tactic = text.strip()
    if tactic.endswith("."):
        tactic = tactic[:-1].rstrip()
    check_text(tactic, "tactic")
    return tactic


def check_identifier(name: str) -> str:
    if not _IDENT.fullmatch(name) or name in VERNACULAR or name in UNSOUND_TACTICS:
        raise TacticRefused(f"subgoal name {name!r} is not a plain identifier")
    return name


def check_text(text: str, what: str) -> None:
    """Refuses ``text`` (a tactic or a subgoal statement) unless it is one harmless expression."""
    if not text:
        raise TacticRefused(f"empty {what}")
    if len(text) > MAX_TACTIC_CHARS:
        raise TacticRefused(f"{what} longer than {MAX_TACTIC_CHARS} characters")
    if any(not (" " <= c <= "~") for c in text):
        raise TacticRefused(f"{what} contains a character outside printable ASCII")
    if any(c in text for c in '"`') or "(*" in text or "*)" in text:
        raise TacticRefused(f"{what} contains a string, comment or control character")
    if _SENTENCE_END.search(text):
        raise TacticRefused(f"{what} contains a sentence end ('.' before a blank): one tactic per step")
    if text.lstrip().startswith(("-", "+", "*", "{", "}")) or text.rstrip().endswith("."):
        raise TacticRefused(f"{what} starts with a bullet or brace, or ends with a period")
    depth = 0
    for c in text:
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth < 0:
            break
    if depth != 0:
        raise TacticRefused(f"{what} has unbalanced parentheses")
    for word in _WORD.findall(text):
        if word in VERNACULAR or word in UNSOUND_TACTICS:
            raise TacticRefused(f"{what} uses the refused word {word!r}")
