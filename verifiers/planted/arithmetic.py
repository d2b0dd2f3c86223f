"""Planted solutions of arithmetic expressions (``chain_sum``, ``basic_arithmetic``).

- ``chain_sum`` and ``basic_arithmetic``: the expression is parsed (numbers, ``+ - * /``,
  parentheses, unary minus) and evaluated one binary operation per step, in evaluation
  order: ``56 + -33 = 23``, then ``23 - 84 = -61``. The last step also states the answer.
  A unary minus is folded into its operand (no step of its own).
"""

from __future__ import annotations

import dataclasses
import random
import re
from fractions import Fraction

from verifiers.planted.corruptions import Corruption, delta, wrong_digit


def show(value: Fraction) -> str:
    """A number as a solution writes it: an integer, a finite decimal, else ``p/q``."""
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    text = f"{abs(value) * 10**places // 1:0{places + 1}d}"
    sign = "-" if value < 0 else ""
    return f"{sign}{text[:-places]}.{text[-places:]}"


_ARITH_TOKEN = re.compile(r"\s*(\d+|[-+*/()])")


@dataclasses.dataclass
class _Op:
    """One binary operation; an operand is a number (from the question) or an earlier op's
    index. ``negate_*``: a unary minus folded into that operand."""

    op: str
    left: Fraction | int
    right: Fraction | int
    left_is_ref: bool
    right_is_ref: bool
    negate_left: bool = False
    negate_right: bool = False


class _ArithParser:
    """``expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)* ;
    unary := '-' unary | number | '(' expr ')'`` -> a list of :class:`_Op` in evaluation order."""

    def __init__(self, text: str) -> None:
        self.tokens = [m.group(1) for m in _ARITH_TOKEN.finditer(text)]
        if "".join(self.tokens) != re.sub(r"\s+", "", text):
            raise ValueError(f"not an arithmetic expression: {text!r}")
        self.pos = 0
        self.ops: list[_Op] = []

    def parse(self) -> tuple[list[_Op], tuple[bool, Fraction | int, bool]]:
        result = self._expr()
        if self.pos != len(self.tokens):
            raise ValueError("trailing tokens")
        return self.ops, result

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise ValueError("unexpected end")
        self.pos += 1
        return token

    def _binary(self, op: str, a: tuple[bool, Fraction | int, bool], b: tuple[bool, Fraction | int, bool]):
        (a_ref, a_val, a_neg), (b_ref, b_val, b_neg) = a, b
        self.ops.append(_Op(op, a_val, b_val, a_ref, b_ref, a_neg, b_neg))
        return True, len(self.ops) - 1, False

    def _expr(self):
        value = self._term()
        while self._peek() in ("+", "-"):
            value = self._binary(self._take(), value, self._term())
        return value

    def _term(self):
        value = self._unary()
        while self._peek() in ("*", "/"):
            value = self._binary(self._take(), value, self._unary())
        return value

    def _unary(self):
        token = self._take()
        if token == "-":
            is_ref, val, neg = self._unary()
            if not is_ref:
                return False, -val, False
            return is_ref, val, not neg
        if token == "(":
            value = self._expr()
            if self._take() != ")":
                raise ValueError("unbalanced parenthesis")
            return value
        if token.isdigit():
            return False, Fraction(int(token)), False
        raise ValueError(f"unexpected {token!r}")


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise ZeroDivisionError
    return a / b


def arithmetic_steps(expression: str, corruption: Corruption | None = None, at: int = 0,
                     rng: random.Random | None = None) -> tuple[list[str], Fraction] | None:
    """The one-operation-per-step solution of ``expression`` (``corruption`` planted at step
    ``at``), and the answer it reaches; None when the corruption cannot change that step
    (e.g. dropping a zero) or a division is by zero."""
    ops, result = _ArithParser(expression).parse()
    if not ops or not result[0] or result[2]:
        return None  # a lone number, or a negated whole (its last step would state the opposite)
    rng = rng or random.Random(0)
    values: list[Fraction] = []
    steps: list[str] = []
    for k, op in enumerate(ops):
        left = values[op.left] if op.left_is_ref else Fraction(op.left)
        right = values[op.right] if op.right_is_ref else Fraction(op.right)
        left, right = (-left if op.negate_left else left), (-right if op.negate_right else right)
        try:
            value = _apply(op.op, left, right)
        except ZeroDivisionError:
            return None
        if corruption is not None and k == at:
            if corruption == "wrong_arithmetic":
                planted = value + delta(rng)
            elif corruption == "sign_error":
                planted = _apply({"+": "-", "-": "+"}[op.op], left, right) if op.op in "+-" else -value
            elif corruption == "dropped_term":
                planted = left
            else:  # copied_wrong_number: one operand copied wrong, the step computed from it
                if rng.random() < 0.5:
                    left = wrong_digit(left, rng)
                else:
                    right = wrong_digit(right, rng)
                try:
                    planted = _apply(op.op, left, right)
                except ZeroDivisionError:
                    return None
            if planted == value:
                return None
            value = planted
        values.append(value)
        steps.append(f"{show(left)} {op.op} {show(right)} = {show(value)}")
    answer = values[-1]
    steps[-1] += f". The answer is {show(answer)}."
    return steps, answer
