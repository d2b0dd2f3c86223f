"""Planted solutions of linear equations (``simple_equations``).

- ``simple_equations`` (linear, ``A*x + B = C``): ``Ax = C - B = D`` (move the constant),
  then ``x = D / A = x0`` (divide); equations with no constant or a coefficient of +-1 need one
  step and are skipped.
"""

from __future__ import annotations

import random
import re
from fractions import Fraction

from verifiers.planted.arithmetic import show
from verifiers.planted.corruptions import Corruption, delta, wrong_digit

_LINEAR_TERM = re.compile(r"\s*([+-]?)\s*(\d*)\s*(\*?)\s*([a-z]?)\s*")


def _linear(side: str, var: str) -> tuple[Fraction, Fraction]:
    """(coefficient of ``var``, constant) of a side made of ``k*var``, ``var`` and ``k`` terms."""
    coef, const = Fraction(0), Fraction(0)
    pos = 0
    side = side.strip()
    if not side:
        raise ValueError("empty side")
    while pos < len(side):
        m = _LINEAR_TERM.match(side, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"not a linear side: {side!r}")
        sign, number, star, name = m.groups()
        if not number and not name:
            raise ValueError(f"not a linear side: {side!r}")
        if name and name != var:
            raise ValueError(f"unknown variable {name!r}")
        if star and not (number and name):
            raise ValueError(f"not a linear side: {side!r}")
        value = Fraction(int(number) if number else 1) * (-1 if sign == "-" else 1)
        if name:
            coef += value
        else:
            const += value
        pos = m.end()
    return coef, const


def equation_steps(equation: str, var: str, corruption: Corruption | None = None, at: int = 0,
                   rng: random.Random | None = None) -> tuple[list[str], Fraction] | None:
    """The two-step solution of a linear equation (move the constant, divide), with
    ``corruption`` planted at step ``at`` (0 or 1); None for equations that one step solves (no
    constant, or a coefficient of +-1) or a corruption that changes nothing."""
    rng = rng or random.Random(0)
    left, right = equation.split("=")
    lc, lk = _linear(left, var)
    rc, rk = _linear(right, var)
    a, b, c = lc - rc, lk, rk - Fraction(0)  # a*x + b = c + (rc moved)  ->  a*x + b = rk
    if a in (0, 1, -1) or b == 0:
        return None  # one step would do (no constant to move, or nothing to divide by)
    # step 0: a*x = c - b = d
    op, shown_b = ("-", b) if b > 0 else ("+", -b)
    c_shown = c
    d = c - b
    if corruption is not None and at == 0:
        if corruption == "wrong_arithmetic":
            d += delta(rng)
        elif corruption == "sign_error":
            op = "+" if op == "-" else "-"
            d = c + b
        elif corruption == "dropped_term":
            d = c
        else:
            if rng.random() < 0.5:
                shown_b = wrong_digit(shown_b, rng)
            else:
                c_shown = wrong_digit(c, rng)
            d = c_shown - shown_b if op == "-" else c_shown + shown_b
        if d == c - b:
            return None
    coefficient = show(a)
    if corruption == "dropped_term" and at == 0:
        first = f"{coefficient}{var} = {show(c)}"
    else:
        first = f"{coefficient}{var} = {show(c_shown)} {op} {show(shown_b)} = {show(d)}"
    # step 1: x = d / a = x0
    divisor, d_shown = a, d
    x0 = d / a
    if corruption is not None and at == 1:
        if corruption == "wrong_arithmetic":
            x0 += delta(rng)
        elif corruption == "sign_error":
            x0 = -x0
        elif corruption == "dropped_term":
            x0 = d
        else:
            d_shown = wrong_digit(d, rng)
            x0 = d_shown / a
        if x0 == d / a:
            return None
    if corruption == "dropped_term" and at == 1:
        second = f"{var} = {show(x0)}"
    else:
        second = f"{var} = {show(d_shown)} / {show(divisor)} = {show(x0)}"
    return [first, f"{second}. The answer is {show(x0)}."], x0
