"""What model text may be before it reaches Coq: one tactic expression, nothing else.

The environment sends a model's tactic as ``Timeout N (TACTIC).``, so the text is parsed as
one Ltac expression, never as a vernacular command. This module refuses, before that, any
text that could end the sentence early or smuggle an assumption in, whatever the model
writes (spec 04 §2 drops ``sorry`` / ``admit``; issues 13 and 24 list the rest): sentence
ends, comments, strings, unbalanced parentheses, placeholders (``admit``, ``give_up``), and
every vernacular keyword that could declare, assume, load, reconfigure or query something
(``Quit``, ``Cd``, ``Pwd``, ``Show`` included). On top of that deny list, an allow list: the
tactic must start with a tactic Coq knows (:data:`verifiers.proof.tactic_names.TACTIC_NAMES`,
generated from Coq's own grammar and Ltac table) or one the theorem's own file defines. The
final check (``Print Assumptions`` in a process without model text) is the second line of
defence.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from verifiers.proof.tactic_names import TACTIC_NAMES

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
Quit Cd Pwd Show Focus Unfocus Unfocused Guarded Backtrack SearchPattern SearchRewrite SearchHead
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
_HEAD = re.compile(r"[\s(]*([A-Za-z_][A-Za-z0-9_']*)")


class TacticRefused(ValueError):
    """Model text that is not a single admissible tactic; the message says why."""


def normalize_tactic(text: str, extra_tactics: Collection[str] = ()) -> str:
    """The tactic in ``text`` without its final period and surrounding blanks (refused when
    it is not one admissible tactic expression). ``extra_tactics``: tactic names the theorem's
    own file defines, allowed at the start besides Coq's."""
    tactic = text.strip()
    if tactic.endswith("."):
        tactic = tactic[:-1].rstrip()
    check_text(tactic, "tactic")
    head = _HEAD.match(tactic)
    name = head.group(1) if head else ""
    if name not in TACTIC_NAMES and name not in extra_tactics:
        raise TacticRefused(f"tactic starts with {name or tactic[:20]!r}, which is not a Coq tactic "
                            "(one tactic per step; vernacular commands are refused)")
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
