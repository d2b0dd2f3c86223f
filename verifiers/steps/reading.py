"""Claims a reasoning step states, read from its text (stage 1 of :mod:`verifiers.steps`).

:func:`read_claims` (in the caller's process, pure Python, no sympy): the step's text is
cut to :data:`MAX_STEP_CHARS`, a small LaTeX subset is rewritten to plain operators
(``\\frac{a}{b}``, ``\\cdot``, ``\\times``, ``\\div``, ``\\sqrt{}``, ``^{}``, ``\\le`` ...),
and the text is tokenised against a whitelist: numbers (``1,000``, ``3.5``), one-letter
lowercase variables, ``+ - * / ^ % ( )``, ``sqrt`` and the relations
``= != < > <= >= ≈``. A maximal run of such tokens is a math span; words and other
characters end it. A span is split at its relations into sides, and each pair of
neighbouring well-formed sides is one claim (a chain ``a = b = c`` makes two).
A side next to an operator word (``3 times 4 = 12`` reads ``4 = 12`` from the text alone)
is dropped, so is a side that is not a complete expression: when in doubt a claim is
not read, never read wrong.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

MAX_STEP_CHARS = 4000
"""Characters of a step read for claims (the start of the step)."""
MAX_LATEX_COMMANDS = 64
"""LaTeX commands (backslashes) of a step read; the text after the last of them is not read."""
MAX_CLAIMS_PER_STEP = 16
"""Claims read from one step; the rest are ignored."""
MAX_SIDE_TOKENS = 64
"""Tokens of one side of a claim; a longer side is not read."""
MAX_NUMBER_DIGITS = 40
"""Digits of one number literal; a longer one is not read."""
MAX_DEPTH = 24
"""Nesting depth of one side (parentheses, unary signs, powers)."""

_BEFORE_WORDS = frozenset({
    "times", "plus", "minus", "by", "of", "over", "and", "divided", "multiplied", "add", "adding",
    "added", "subtract", "subtracting", "subtracted", "sum", "product", "difference", "quotient",
    "less", "more", "than", "per", "from", "to", "half", "twice", "double", "triple", "sqrt", "root",
    "power", "into",
})
"""A side right after one of these words is an operand of an operation written in words
(``3 times 4 = 12``, ``30% of 160 = 48``, ``add 3 to 5 = 8``)."""
_AFTER_WORDS = frozenset({"times", "plus", "minus", "divided", "multiplied", "over", "squared", "cubed", "percent"})
"""A side right before one of these words is continued in words (``12 = 3 times 4``)."""
_WHOLE_OF = frozenset({"total", "sum", "product", "difference", "value", "result"})
"""``a total of 96 + 16 = 112``: after these, ``of`` introduces the whole computation."""

_LATEX_COMMAND = re.compile(r"\\([A-Za-z]+|.)")
_LATEX_SIMPLE = {
    "cdot": " * ", "times": " * ", "ast": " * ", "div": " / ", "le": " <= ", "leq": " <= ",
    "leqslant": " <= ", "ge": " >= ", "geq": " >= ", "geqslant": " >= ", "ne": " != ", "neq": " != ",
    "lt": " < ", "gt": " > ", "approx": " ≈ ", "left": "", "right": "", "%": "%", ",": " ", ";": " ",
    ":": " ", "!": "", " ": " ", "(": " ", ")": " ", "[": " ", "]": " ", "displaystyle": " ",
}
_UNICODE = str.maketrans({"×": "*", "·": "*", "⋅": "*", "∗": "*", "÷": "/", "−": "-", "$": " ", "€": " ", "£": " "})
_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?|\.\d+)"
    r"|(?P<word>[A-Za-z]{2,}|[A-Z])"
    r"|(?P<var>[a-z])"
    r"|(?P<rel><=|>=|!=|==|=|<|>|≈)"
    r"|(?P<op>\*\*|[-+*/^%])"
    r"|(?P<lp>\()|(?P<rp>\))"
    r"|(?P<ws>\s+)"
    r"|(?P<other>.)",
    re.DOTALL,
)
_RELATIONS = {"=": "=", "==": "=", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "≈": "≈"}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One relation between two sides, as whitelisted tokens (``lhs``/``rhs``)."""

    lhs: tuple[str, ...]
    rel: str
    rhs: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{' '.join(self.lhs)} {self.rel} {' '.join(self.rhs)}"

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(t for t in (*self.lhs, *self.rhs) if len(t) == 1 and t.isalpha())


def _brace_group(text: str, start: int) -> tuple[str, int] | None:
    """The text of the ``{...}`` group starting at ``start`` (spaces skipped) and the index
    after it, or None."""
    i = start
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1: j], j + 1
    return None


def delatex(text: str, depth: int = 0) -> str:
    """A small LaTeX subset rewritten as plain operators; other commands become ``§`` (a
    character that ends a math span). Bounded: groups nested deeper than :data:`MAX_DEPTH`
    become ``§``, and the caller cuts the text at :data:`MAX_LATEX_COMMANDS` commands."""
    if depth > MAX_DEPTH:
        return " § "
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    out: list[str] = []
    i = 0
    while i < len(text):
        m = _LATEX_COMMAND.match(text, i) if text[i] == "\\" else None
        if m is None:
            if text[i] == "^":
                group = _brace_group(text, i + 1)
                if group is not None:
                    out.append("^(" + delatex(group[0], depth + 1) + ")")
                    i = group[1]
                    continue
            out.append(text[i])
            i += 1
            continue
        name = m.group(1)
        i = m.end()
        if name in ("frac", "sqrt"):
            first = _brace_group(text, i)
            second = _brace_group(text, first[1]) if (first and name == "frac") else None
            if name == "frac" and first and second:
                out.append(f"(({delatex(first[0], depth + 1)})/({delatex(second[0], depth + 1)}))")
                i = second[1]
            elif name == "sqrt" and first:
                out.append(f"sqrt({delatex(first[0], depth + 1)})")
                i = first[1]
            else:
                out.append(" § ")
        elif name in _LATEX_SIMPLE:
            out.append(_LATEX_SIMPLE[name])
        else:
            out.append(" § ")
    return "".join(out)


def _cut(text: str) -> str:
    """The part of a step that is read: :data:`MAX_STEP_CHARS` characters, and no more than
    :data:`MAX_LATEX_COMMANDS` backslashes (each LaTeX group is scanned for its braces)."""
    text = text[:MAX_STEP_CHARS]
    at = -1
    for _ in range(MAX_LATEX_COMMANDS):
        at = text.find("\\", at + 1)
        if at < 0:
            return text
    beyond = text.find("\\", at + 1)
    return text if beyond < 0 else text[:beyond]


def _tokens(text: str) -> list[tuple[str, str, bool]]:
    """(kind, value, spaced_before) per token; whitespace folded into the next token's flag."""
    text = text.replace("≤", "<=").replace("≥", ">=").replace("≠", "!=").translate(_UNICODE)
    text = text.replace("{", "(").replace("}", ")")
    out: list[tuple[str, str, bool]] = []
    spaced = True
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "other"
        if kind == "ws":
            spaced = True
            continue
        value = m.group()
        if kind == "num":
            value = value.replace(",", "")
        elif kind == "word" and value == "sqrt":
            kind = "func"
        elif kind == "rel":
            value = _RELATIONS[value]
        out.append((kind, value, spaced))
        spaced = False
    return out


_OPERAND_END = ("num", "var", "rp")
_OPERAND_START = ("num", "var", "lp", "func")


def _times_x(tokens: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """``3 x 4``: an ``x`` with spaces on both sides between operands is multiplication."""
    out = list(tokens)
    for k in range(1, len(tokens) - 1):
        kind, value, spaced = tokens[k]
        if (kind, value) == ("var", "x") and spaced and tokens[k + 1][2] \
                and tokens[k - 1][0] in ("num", "rp") and tokens[k + 1][0] in ("num", "lp"):
            out[k] = ("op", "*", True)
    return out


def _well_formed(part: Sequence[tuple[str, str, bool]]) -> bool:
    """A complete expression: balanced, no dangling operator, operands joined by operators or
    written together (``2x``, ``3(4)``; ``3 4`` is not an expression)."""
    if not part or len(part) > MAX_SIDE_TOKENS:
        return False
    depth = 0
    prev: str | None = None
    for k, (kind, value, spaced) in enumerate(part):
        if kind == "num" and len(value.replace(".", "")) > MAX_NUMBER_DIGITS:
            return False
        if kind == "lp":
            depth += 1
        elif kind == "rp":
            depth -= 1
            if depth < 0 or prev in ("op", "lp", "func"):
                return False
        if kind == "op" and value != "%":
            if prev is None or prev == "lp":
                if value not in "+-":
                    return False
            elif prev == "op":
                attached = k + 1 < len(part) and not part[k + 1][2]
                if value not in "+-" or not attached:
                    return False  # "2 * -3" and "2 - -1" read; "2 + * 3", "2 - - 1" do not
            elif prev == "func":
                return False
        if kind == "op" and value == "%" and prev not in ("num", "rp"):
            return False
        if kind == "func" and (k + 1 >= len(part) or part[k + 1][0] != "lp"):
            return False
        if kind in _OPERAND_START and prev in (*_OPERAND_END, "pct") and spaced:
            return False  # "3 4": two operands side by side, not a product the text wrote
        prev = "pct" if (kind, value) == ("op", "%") else kind
    return depth == 0 and prev not in ("op", "func", "lp")


def read_claims(text: str) -> list[Claim]:
    """The claims ``text`` states, in order (at most :data:`MAX_CLAIMS_PER_STEP`).

    Pure string work, linear in the (capped) text: safe on any input.
    """
    tokens = _times_x(_tokens(delatex(_cut(text))))
    claims: list[Claim] = []
    k = 0
    previous_word: str | None = None
    while k < len(tokens) and len(claims) < MAX_CLAIMS_PER_STEP:
        kind, value, _ = tokens[k]
        if kind in ("word", "other"):
            word = value.lower() if kind == "word" else None
            whole = word == "of" and previous_word in _WHOLE_OF
            previous_word = None if whole else word
            k += 1
            continue
        end = k
        while end < len(tokens) and tokens[end][0] not in ("word", "other"):
            end += 1
        next_word = tokens[end][1].lower() if end < len(tokens) and tokens[end][0] == "word" else None
        if previous_word is not None and kind == "lp" and not tokens[k][2]:
            previous_word = "of"  # "exec(1)", "f(x)": a call written in words, not a product (dropped)
        claims.extend(_span_claims(tokens[k:end], previous_word, next_word))
        previous_word = None
        k = end
    return claims[:MAX_CLAIMS_PER_STEP]


def numbers(text: str) -> set[str]:
    """Every number written in ``text`` (capped like :func:`read_claims`), as canonical
    strings of their absolute values (``1,000`` -> ``1000``, ``3.50`` -> ``3.5``)."""
    return {_canonical(v) for kind, v, _ in _tokens(delatex(_cut(text)))
            if kind == "num" and len(v) <= MAX_NUMBER_DIGITS + 1}


def _canonical(number: str) -> str:
    if "." in number:
        number = number.rstrip("0").rstrip(".") or "0"
    return number.lstrip("0") or "0"


def unsupported(claim: Claim, known: set[str]) -> list[str]:
    """The operands of ``claim``'s computations (numbers on a side that is more than one
    signed number) that are not in ``known`` (see :func:`numbers`)."""
    out = []
    for side in (claim.lhs, claim.rhs):
        if len(side) - (side[0] in "+-") > 1:  # "-4" is a result, "2 - 6" a computation
            out.extend(t for t in side if (t[0].isdigit() or t[0] == ".") and _canonical(t) not in known)
    return out


def _span_claims(span: Sequence[tuple[str, str, bool]], before: str | None, after: str | None) -> list[Claim]:
    parts: list[list[tuple[str, str, bool]]] = [[]]
    rels: list[str] = []
    for token in span:
        if token[0] == "rel":
            rels.append(token[1])
            parts.append([])
        else:
            parts[-1].append(token)
    if not rels:
        return []
    ok = [_well_formed(p) for p in parts]
    if before in _BEFORE_WORDS:
        ok[0] = False
    if after in _AFTER_WORDS or (after == "of" and parts[-1] and parts[-1][-1][1] == "%"):
        ok[-1] = False  # "12 = 3 times 4", "12 = 50% of 24"
    return [
        Claim(tuple(t[1] for t in parts[i]), rels[i], tuple(t[1] for t in parts[i + 1]))
        for i in range(len(rels)) if ok[i] and ok[i + 1]
    ]
