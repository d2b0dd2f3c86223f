"""Planted solutions of ``gsm_symbolic`` problems.

- ``gsm_symbolic``: the task's own worked solution, one line per step, where it fits (every
  ``=`` in a plain computation, see :func:`gsm_steps`); the corruption hits the first
  computation of its line, and later computations that use a changed result recompute.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from fractions import Fraction

from verifiers.planted.arithmetic import show
from verifiers.planted.corruptions import Corruption, delta, wrong_digit

_GSM_NUM = r"(?<![\d.,])[$€£]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d,]\d)"
_GSM_OP = r"\s*(?:[-+*/×÷]|(?<=\s)x(?=\s))\s*"
_GSM_COMPUTATION = re.compile(rf"{_GSM_NUM}(?:{_GSM_OP}{_GSM_NUM})+\s*=\s*{_GSM_NUM}")
_GSM_NUMBER = re.compile(_GSM_NUM)


def _gsm_value(token: str) -> Fraction:
    return Fraction(token.lstrip("$€£").replace(",", ""))


def _gsm_render(token: str, value: Fraction) -> str:
    """``value`` written like ``token`` (its currency sign kept)."""
    sign = token[0] if token[0] in "$€£" else ""
    return f"{sign}{show(value)}" if value >= 0 else f"-{sign}{show(-value)}"


def _gsm_eval(operands: Sequence[Fraction], ops: Sequence[str]) -> Fraction:
    """``operands`` joined by ``ops``: ``*`` and ``/`` first, then ``+`` and ``-``, left to right."""
    terms: list[Fraction] = [operands[0]]
    signs: list[str] = []
    for o, v in zip(ops, operands[1:], strict=True):
        if o in "*/":
            terms[-1] = terms[-1] * v if o == "*" else terms[-1] / v
        else:
            signs.append(o)
            terms.append(v)
    value = terms[0]
    for o, v in zip(signs, terms[1:], strict=True):
        value = value + v if o == "+" else value - v
    return value


def gsm_steps(question: str, cot: str, corruption: Corruption | None = None, at: int = 0,
              rng: random.Random | None = None) -> tuple[list[str], Fraction] | None:
    """The worked solution of a gsm_symbolic problem, one line per step, with ``corruption``
    planted in the first computation of line ``at``; None where the task's text does not fit:
    a line with ``=`` but no plain computation (``a op b = c`` with numbers, ``$`` / ``€`` and
    ``+ - * / × ÷ x`` only), a computation that does not hold, an operand that is both a number
    of the question and an earlier result, or a corruption that changes nothing.

    An operand equal to an earlier computation's result (and not written in the question) is
    read as that result: after a corruption it takes the new value, and later lines recompute.
    """
    rng = rng or random.Random(0)
    lines = [ln.strip() for ln in cot.split("\n") if ln.strip() and not ln.strip().startswith("####")]
    given = {_gsm_value(m.group()) for m in _GSM_NUMBER.finditer(question)}
    changed: dict[Fraction, Fraction] = {}  # an earlier result -> the value it has now
    results: set[Fraction] = set()
    steps: list[str] = []
    final: Fraction | None = None
    applied = False
    for k, line in enumerate(lines):
        found = list(_GSM_COMPUTATION.finditer(line))
        if "=" in line and not found:
            return None
        out, pos = [], 0
        for j, m in enumerate(found):
            tokens = list(_GSM_NUMBER.finditer(m.group()))
            *operand_tokens, result_token = [t.group() for t in tokens]
            between = [m.group()[a.end():b.start()] for a, b in zip(tokens, tokens[1:-1])]
            ops = ["*" if o.strip() in ("×", "x") else "/" if o.strip() == "÷" else o.strip() for o in between]
            operands = []
            for tok in operand_tokens:
                v = _gsm_value(tok)
                if v in results and v in given:
                    return None  # which one is it? the text does not say
                operands.append(changed.get(v, v) if v in results else v)
            original = _gsm_value(result_token)
            try:
                if _gsm_eval([_gsm_value(t) for t in operand_tokens], ops) != original:
                    return None  # the worked solution's own arithmetic does not hold
                value = _gsm_eval(operands, ops)
                if corruption is not None and k == at and j == 0:
                    applied = True
                    correct_value = value
                    if corruption == "wrong_arithmetic":
                        value += delta(rng)
                    elif corruption == "sign_error":  # written as before, computed with + and - swapped
                        if not any(o in "+-" for o in ops):
                            return None
                        i = max(i for i, o in enumerate(ops) if o in "+-")
                        value = _gsm_eval(operands, [*ops[:i], "+" if ops[i] == "-" else "-", *ops[i + 1:]])
                    elif corruption == "dropped_term":
                        value = _gsm_eval(operands[:-1], ops[:-1])
                    else:
                        i = rng.randrange(len(operands))
                        operands[i] = wrong_digit(operands[i], rng)
                        value = _gsm_eval(operands, ops)
                    if value == correct_value:
                        return None
            except ZeroDivisionError:
                return None
            if value != original:
                changed[original] = value
            results.add(original)
            final = value
            rendered = m.group()
            pieces, last = [], 0
            for tok, new in zip(tokens, [*operands, value]):
                pieces.append(rendered[last:tok.start()] + _gsm_render(tok.group(), new))
                last = tok.end()
            out.append(line[pos:m.start()] + "".join(pieces) + rendered[last:])
            pos = m.end()
        steps.append("".join(out) + line[pos:])
    if final is None or (corruption is not None and not applied):
        return None
    steps[-1] = f"{steps[-1].rstrip()} The answer is {show(final)}."
    return steps, final
