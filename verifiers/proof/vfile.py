"""A user's Coq ``.v`` file as theorems to prove, and the file again with the proofs found.

:func:`read_vfile` splits the file into sentences (comments, strings, bullets and braces
handled as Coq's lexer does) and returns one :class:`~verifiers.proof.theorems.TheoremSpec`
per lemma to prove: every ``Theorem`` / ``Lemma`` / ``Fact`` / ``Remark`` / ``Corollary`` /
``Proposition`` / ``Property`` / ``Example`` whose proof ends in ``Admitted.``, or the ones
named. Each carries a :class:`CoqSource`: the file's text before the lemma as sentences (its
``Require``s, definitions, earlier lemmas, earlier ``Admitted`` ones as they stand), the
lemma's own declaration sentence verbatim, the ``End`` sentences that close the sections and
modules open around it, and which names the file itself declares as assumptions.

The file's context is trusted, the model's text is not: :class:`~verifiers.proof.coq.CoqEnv`
loads the context sentences as they are and sends model text only through the guard. The
final check accepts an assumption only when the file's context declared it (an ``Axiom``,
``Parameter``, ``Hypothesis``, ... or an earlier lemma left ``Admitted``) or the config lists
it (``CoqConfig.allowed_assumptions``); a proof that leans on an earlier admitted lemma is
accepted and says so in its check detail.

:func:`write_proofs` returns the file with each proved lemma's ``Proof. ... Admitted.`` block
replaced by the checked block (:func:`proof_block`: the tactics exactly as the final check
compiled them, then ``Qed.``); everything else is kept byte for byte.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from search.protocols import PonderError
from verifiers.proof.theorems import CoqSource, TheoremSpec

THEOREM_KEYWORDS = ("Theorem", "Lemma", "Fact", "Remark", "Corollary", "Proposition", "Property", "Example")
ASSUMPTION_KEYWORDS = ("Axiom", "Axioms", "Parameter", "Parameters", "Conjecture", "Conjectures", "Hypothesis",
                       "Hypotheses", "Variable", "Variables")
PROOF_ENDERS = ("Qed", "Defined", "Admitted", "Abort", "Save")
_IDENT = r"[A-Za-z_][A-Za-z0-9_']*"
_ATTRS = r"(?:#\[[^\]]*\]\s*)*(?:(?:Local|Global|Polymorphic|Monomorphic|Program|Private)\s+)*"
_HEADER = re.compile(rf"^{_ATTRS}({'|'.join(THEOREM_KEYWORDS)})\s+({_IDENT})(.*)$", re.S)
_ASSUMPTION = re.compile(rf"^{_ATTRS}({'|'.join(ASSUMPTION_KEYWORDS)})\b\s*(.*)$", re.S)
_SECTION = re.compile(rf"^Section\s+({_IDENT})\s*\.$")
_MODULE = re.compile(rf"^{_ATTRS}Module\s+(?:Type\s+)?(?:(?:Import|Export)\s+)?({_IDENT})(.*)\.$", re.S)
_END = re.compile(rf"^End\s+({_IDENT})\s*\.$")
_LTAC = re.compile(rf"^{_ATTRS}Ltac\s+(?:rec\s+)?({_IDENT})")
_NOTATION = re.compile(rf'^{_ATTRS}Tactic\s+Notation\s*(?:\(\s*at\s+level\s+\d+\s*\)\s*)?"({_IDENT})"')
_FIRST_WORD = re.compile(rf"^{_ATTRS}({_IDENT})")


class VFileError(PonderError):
    """A ``.v`` file that cannot be read as theorems to prove; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One sentence of the file: its text without comments, and where it lies in the file
    (``start``: its first non-blank character, ``end``: just past its final period)."""

    text: str
    start: int
    end: int


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of Coq source ``text``: a period followed by a blank (or the end) ends one,
    outside comments (nested) and strings; a bullet (``-``, ``+``, ``*``, repeated) or a brace
    at a sentence's start is a sentence of its own. Raises :class:`VFileError` on an
    unterminated comment or string."""
    out: list[Sentence] = []
    i, n = 0, len(text)
    buf: list[str] = []
    start = -1

    def flush(end: int) -> None:
        nonlocal buf, start
        body = "".join(buf).strip()
        if body:
            out.append(Sentence(body, start, end))
        buf, start = [], -1

    while i < n:
        c = text[i]
        if text.startswith("(*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("(*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*)", j):
                    depth, j = depth - 1, j + 2
                elif text[j] == '"':  # Coq lexes strings inside comments too
                    j = _string_end(text, j)
                else:
                    j += 1
            if depth:
                raise VFileError(f"unterminated comment starting at {_where(text, i)}")
            buf.append(" ")
            i = j
            continue
        if c.isspace():
            buf.append(c)
            i += 1
            continue
        if start < 0:
            start = i
            if c in "{}":
                buf.append(c)
                flush(i + 1)
                i += 1
                continue
            if c in "-+*" and not text.startswith("*)", i):
                j = i
                while j < n and text[j] == c:
                    j += 1
                if j == n or text[j].isspace() or text.startswith("(*", j):
                    buf.append(text[i:j])
                    flush(j)
                    i = j
                    continue
        if c == '"':
            j = _string_end(text, i)
            buf.append(text[i:j])
            i = j
            continue
        if c == "." and (i + 1 == n or text[i + 1].isspace()) and _ends(text, i):
            buf.append(c)
            flush(i + 1)
            i += 1
            continue
        buf.append(c)
        i += 1
    if "".join(buf).strip():
        raise VFileError(f"the file ends inside a sentence starting at {_where(text, start)} (a missing period?)")
    return out


def _ends(text: str, i: int) -> bool:
    """Whether the period at ``i`` (followed by a blank) ends a sentence: not the second dot of
    a ``..`` (notations' recursive patterns), but the last of ``...`` (a ``Proof with`` step)."""
    dots = len(text[:i + 1]) - len(text[:i + 1].rstrip("."))
    return dots != 2


def _string_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text):
        if text[j] == '"':
            if text.startswith('""', j):
                j += 2
                continue
            return j + 1
        j += 1
    raise VFileError(f"unterminated string starting at {_where(text, i)}")


def _where(text: str, i: int) -> str:
    line = text.count("\n", 0, i) + 1
    return f"line {line}, column {i - (text.rfind(chr(10), 0, i) + 1) + 1}"


def _first_word(sentence: str) -> str:
    m = _FIRST_WORD.match(sentence)
    return m.group(1) if m else ""


def _assumption_names(rest: str) -> list[str]:
    """Names declared by ``Axiom a b : T`` or ``Parameters (a b : T) (c : U)`` (``rest``: after the keyword)."""
    rest = rest.strip()
    if rest.startswith("("):
        return [name for group in re.findall(r"\(([^():]*):", rest) for name in group.split()]
    return rest.split(":", 1)[0].split() if ":" in rest else []


def split_header(rest: str) -> tuple[str, str, str | None]:
    """(binders, statement, body) of a declaration after its name: ``(n : nat) : n + 0 = n.``
    gives ``("(n : nat)", "n + 0 = n", None)``; a ``:= term`` body comes back as ``body``."""
    rest = rest.strip()
    if rest.endswith("."):
        rest = rest[:-1]
    depth, colon = 0, -1
    for k, c in enumerate(rest):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == ":" and depth == 0 and rest[k + 1:k + 2] not in ("=", ":", ">") and rest[k - 1:k] != ":":
            colon = k
            break
    if colon < 0:
        raise VFileError(f"no ':' before the statement in {rest[:80]!r}")
    binders, statement, body = rest[:colon].strip(), rest[colon + 1:], None
    depth = 0
    for k, c in enumerate(statement):
        depth += c in "([{"
        depth -= c in ")]}"
        if depth == 0 and statement.startswith(":=", k):
            statement, body = statement[:k], statement[k + 2:].strip()
            break
    return binders, " ".join(statement.split()), body


@dataclasses.dataclass
class _Found:
    name: str
    path: str
    header: Sentence
    proof: list[Sentence]
    ender: str
    context_end: int  # index of the header sentence
    closers: tuple[str, ...]
    allowed: tuple[str, ...]
    tactics: tuple[str, ...]


def _scan(sentences: Sequence[Sentence]) -> list[_Found]:
    """Every theorem-like declaration with a proof block, in file order."""
    found: list[_Found] = []
    scopes: list[tuple[str, str]] = []  # ("Section" | "Module", name)
    allowed: list[str] = []
    tactics: list[str] = []
    i = 0
    while i < len(sentences):
        s = sentences[i].text
        prefix = "".join(f"{name}." for kind, name in scopes if kind == "Module")
        if m := _SECTION.match(s):
            scopes.append(("Section", m.group(1)))
        elif (m := _MODULE.match(s)) and ":=" not in m.group(2):
            scopes.append(("Module", m.group(1)))
        elif m := _END.match(s):
            if scopes and scopes[-1][1] == m.group(1):
                scopes.pop()
        elif m := _LTAC.match(s) or _NOTATION.match(s):
            tactics.append(m.group(1))
        elif m := _ASSUMPTION.match(s):
            allowed.extend(prefix + name for name in _assumption_names(m.group(2)))
        elif (m := _HEADER.match(s)) and "Program" not in s[:m.start(1)]:
            name, rest = m.group(2), m.group(3)
            try:
                body = split_header(rest)[2]
            except VFileError:
                body = None
            if body is None:
                j = i + 1
                while j < len(sentences) and _first_word(sentences[j].text) not in PROOF_ENDERS:
                    if _first_word(sentences[j].text) == "Proof" and not _is_proof_opener(sentences[j].text):
                        break  # `Proof term.` ends the proof itself
                    j += 1
                if j == len(sentences):
                    raise VFileError(f"the proof of {name} ({_where_sentence(sentences[i])}) never ends "
                                     "(expected Qed, Defined or Admitted)")
                ender = _first_word(sentences[j].text)
                closers = tuple(f"End {nm}." for _, nm in reversed(scopes))
                found.append(_Found(name, prefix + name, sentences[i], list(sentences[i + 1:j + 1]), ender, i,
                                    closers, tuple(allowed), tuple(tactics)))
                if ender == "Admitted":
                    allowed.append(prefix + name)
                i = j
        i += 1
    return found


def _indent(text: str, i: int) -> str:
    line = text[text.rfind("\n", 0, i) + 1:i]
    return line if not line.strip() else ""


def _where_sentence(s: Sentence) -> str:
    return f"at character {s.start}"


def _is_proof_opener(text: str) -> bool:
    return bool(re.fullmatch(r"Proof(\s+(using|with)\b.*)?\s*\.", text, re.S))


def read_vfile(path: str | Path, names: Sequence[str] = ()) -> list[TheoremSpec]:
    """The theorems to prove in the file at ``path`` (see the module docstring)."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise VFileError(f"cannot read the Coq file {str(p)!r}: {err}") from None
    return parse_vfile(text, names, file=str(p))


def parse_vfile(text: str, names: Sequence[str] = (), *, file: str = "") -> list[TheoremSpec]:
    """:func:`read_vfile` on the file's text. ``names``: the lemmas to prove (by name, or by
    the module path as in ``M.foo``), whatever their proofs end in; empty: those ending in
    ``Admitted.``. Raises :class:`VFileError` naming a lemma that is not in the file."""
    where = file or "the Coq text"
    sentences = split_sentences(text)
    found = _scan(sentences)
    if names:
        chosen = []
        for n in names:
            hits = [f for f in found if n in (f.name, f.path)]
            if not hits:
                known = ", ".join(f.path for f in found) or "none"
                raise VFileError(f"invalid theorems={n!r}: no lemma with a Proof ... block of that name in {where} "
                                 f"(lemmas there: {known})")
            if len(hits) > 1:
                raise VFileError(f"invalid theorems={n!r}: several lemmas of that name in {where} "
                                 f"({', '.join(f.path for f in hits)}); give the module path")
            chosen.append(hits[0])
    else:
        chosen = [f for f in found if f.ender == "Admitted"]
    specs = []
    for f in chosen:
        m = _HEADER.match(f.header.text)
        assert m is not None
        binders, statement, _ = split_header(m.group(3))
        shown = f"forall {binders}, {statement}" if binders else statement
        first = f.proof[0].text if f.proof else ""
        opener = first if _is_proof_opener(first) else "Proof."
        source = CoqSource(context=tuple(s.text for s in sentences[:f.context_end]), header=f.header.text,
                           opener=opener, closers=f.closers, path=f.path, allowed=f.allowed, file=file,
                           span=(f.header.end, f.proof[-1].end), indent=_indent(text, f.header.start),
                           tactics=f.tactics)
        specs.append(TheoremSpec(f.path, shown, (), 0, "file", source))
    return specs


def proof_block(tactics: Sequence[str], opener: str = "Proof.", indent: str = "") -> str:
    """The vernacular of a checked proof, as the final check compiles it and the written
    file holds it: the opener, each tactic as ``(TACTIC).`` on its own line, ``Qed.``.
    ``tactics`` must already have passed :func:`verifiers.proof.guard.normalize_tactic`."""
    lines = [f"{indent}{opener}", *(f"{indent}  ({t})." for t in tactics), f"{indent}Qed."]
    return "\n".join(lines)


def write_proofs(text: str, proofs: Mapping[str, Sequence[str]], specs: Sequence[TheoremSpec]) -> str:
    """``text`` (the file ``specs`` were read from) with the proof block of each lemma in
    ``proofs`` (its name -> its checked tactics) replaced by :func:`proof_block`. Lemmas
    without a proof keep their block as it is. Raises :class:`VFileError` when ``text`` is
    not the text the specs were read from."""
    by_name = {s.name: s for s in specs}
    unknown = [n for n in proofs if n not in by_name or by_name[n].source is None]
    if unknown:
        raise VFileError(f"no file lemma named {', '.join(map(repr, unknown))} among the specs")
    edits = []
    for name, tactics in proofs.items():
        src = by_name[name].source
        assert src is not None
        start, end = src.span
        if not text[:start].endswith(".") or not text[:end].endswith(".") or end > len(text):
            raise VFileError(f"the text changed since {name} was read (its proof block is not where it was)")
        edits.append((start, end, "\n" + proof_block([t.strip() for t in tactics], src.opener, src.indent)))
    out = text
    for start, end, new in sorted(edits, reverse=True):
        out = out[:start] + new + out[end:]
    return out


def write_proofs_file(source: str | Path, dest: str | Path, proofs: Mapping[str, Sequence[str]],
                      specs: Sequence[TheoremSpec]) -> Path:
    """Reads ``source``, writes it to ``dest`` with the ``proofs`` in place (see
    :func:`write_proofs`); returns ``dest``. ``source`` itself is never written."""
    src, out = Path(source), Path(dest)
    if src.resolve() == out.resolve():
        raise VFileError(f"refusing to overwrite the input file {str(src)!r}: give another destination")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(write_proofs(src.read_text(), proofs, specs))
    return out
