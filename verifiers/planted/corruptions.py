"""The corruption kinds planted in a solution, and the changes of a value they share.

Corruptions (each changes the value the step states; later steps recompute from it):

- ``wrong_arithmetic``: the step's result is off by a small non-zero amount;
- ``sign_error``: the operation's sign is flipped (``a + b`` computed as ``a - b``; a
  product / quotient negated; for an equation, the constant moved without changing its sign);
- ``dropped_term``: the step leaves its second operand out (``a + b = a``; the equation's
  constant, or its coefficient, dropped);
- ``copied_wrong_number``: an operand is copied with one digit changed and the step computes
  correctly from it. In an arithmetic chain this is consistent arithmetic from a wrong input:
  a checker of stated claims cannot see it; in an equation the derived equation no longer has
  the question's solution.
"""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Literal

Corruption = Literal["wrong_arithmetic", "sign_error", "dropped_term", "copied_wrong_number"]
CORRUPTIONS: tuple[Corruption, ...] = ("wrong_arithmetic", "sign_error", "dropped_term", "copied_wrong_number")


def wrong_digit(value: Fraction, rng: random.Random) -> Fraction:
    """``value`` with one digit of its integer part changed (same number of digits)."""
    sign = -1 if value < 0 else 1
    digits = list(str(abs(value.numerator // value.denominator)))
    k = rng.randrange(len(digits))
    choices = [d for d in "0123456789" if d != digits[k] and not (k == 0 and d == "0" and len(digits) > 1)]
    digits[k] = rng.choice(choices)
    return sign * (Fraction(int("".join(digits))) + (abs(value) - abs(value.numerator // value.denominator)))


def delta(rng: random.Random) -> int:
    """A small non-zero offset in [-10, -1] or [1, 10] (a ``wrong_arithmetic`` result's error)."""
    return rng.choice([-1, 1]) * rng.randint(1, 10)
