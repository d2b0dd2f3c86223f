"""Planted-error solutions: correct ones verify, every planted error changes the arithmetic at
its first-error index, later steps follow from it; the held-out split is by question."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
import sympy

from verifiers.planted import (
    CORRUPTIONS,
    arithmetic_steps,
    equation_steps,
    is_heldout,
    planted_solutions,
    show,
)

NUM = r"-?\d+(?:\.\d+)?(?:/\d+)?"
ARITH = re.compile(rf"^({NUM}) ([-+*/]) ({NUM}) = ({NUM})(?:\. The answer is ({NUM})\.)?$")


def _value(text: str) -> Fraction:
    return Fraction(text)


def _holds(step: str) -> bool:
    """Whether an arithmetic step ``a op b = c`` is true (computed here with Fractions)."""
    m = ARITH.match(step)
    assert m, step
    a, op, b, c = _value(m.group(1)), m.group(2), _value(m.group(3)), _value(m.group(4))
    if op == "/":
        return b != 0 and a / b == c
    return {"+": a + b, "-": a - b, "*": a * b}[op] == c


def _operands(step: str) -> tuple[Fraction, Fraction]:
    m = ARITH.match(step)
    assert m, step
    return _value(m.group(1)), _value(m.group(3))


@pytest.mark.parametrize(("value", "text"), [
    (Fraction(7), "7"), (Fraction(-61), "-61"), (Fraction(1, 4), "0.25"), (Fraction(-5, 2), "-2.5"),
    (Fraction(1279, 98), "1279/98"), (Fraction(-3, 40), "-0.075"),
])
def test_show(value, text) -> None:
    assert show(value) == text
    assert Fraction(text) == value


@pytest.mark.parametrize("task", ["chain_sum", "basic_arithmetic"])
def test_arithmetic_solutions(task: str) -> None:
    solutions = planted_solutions(task, 40, seed=3)
    assert len(solutions) == 80
    kinds = set()
    for correct, planted in zip(solutions[::2], solutions[1::2], strict=True):
        assert correct.correct and correct.answer == correct.gold.strip()
        assert all(_holds(s) for s in correct.steps)
        assert len(correct.steps) >= 2
        k = planted.first_error
        assert k is not None and planted.corruption in CORRUPTIONS
        kinds.add(planted.corruption)
        assert planted.steps[:k] == correct.steps[:k]  # nothing wrong before the planted step
        assert planted.steps[k] != correct.steps[k]
        assert planted.answer != planted.gold
        if planted.corruption == "copied_wrong_number":
            # the arithmetic holds, from an operand that is not the correct solution's
            assert _holds(planted.steps[k]) and _operands(planted.steps[k]) != _operands(correct.steps[k])
        else:
            assert not _holds(planted.steps[k])
        assert all(_holds(s) for s in planted.steps[k + 1:])  # later steps follow from the error
    assert kinds == set(CORRUPTIONS)


def _equation_of(step: str, var: str):
    left, right = step.split(". The answer")[0].split(" = ")[:2]
    return sympy.Eq(sympy.sympify(left.replace(var, f"*{var}") if left[0] != var else left),
                    sympy.sympify(right))


def test_equation_solutions() -> None:
    solutions = planted_solutions("simple_equations", 40, seed=5)
    assert len(solutions) == 80
    for correct, planted in zip(solutions[::2], solutions[1::2], strict=True):
        var = re.search(r"(?:for|of) ([a-z])\b", correct.question).group(1)
        x = sympy.Symbol(var)
        gold = sympy.Rational(correct.gold)
        assert correct.answer == correct.gold
        for step in correct.steps:  # each derived equation keeps the question's solution
            assert sympy.solve(_equation_of(step, var), x) == [gold]
        k = planted.first_error
        assert planted.steps[:k] == correct.steps[:k] and planted.steps[k] != correct.steps[k]
        assert sympy.Rational(planted.answer) != gold
        # the planted step either states a false equality or an equation that lost the solution
        step = planted.steps[k].split(". The answer")[0]
        sides = step.split(" = ")
        eq_lost = sympy.solve(_equation_of(step, var), x) != [gold]
        wrong_arith = len(sides) == 3 and sympy.sympify(sides[1]) != sympy.sympify(sides[2])
        assert eq_lost or wrong_arith, planted


def test_every_corruption_changes_the_step() -> None:
    import random

    for kind in CORRUPTIONS:
        for at in range(2):
            made = arithmetic_steps("57 + 87 + 70", kind, at, random.Random(1))
            assert made is not None and made[1] != 214
            made = equation_steps("20*h + 65 = 1485", "h", kind, at, random.Random(1))
            assert made is not None and made[1] != 71
    assert arithmetic_steps("5 + 0 + 3", "dropped_term", 0) is None  # dropping a 0 changes nothing
    assert equation_steps("405*h = 24705", "h") is None  # one step solves it


def test_heldout_split_is_by_question_and_disjoint() -> None:
    held = planted_solutions("chain_sum", 30, seed=0)
    train = planted_solutions("chain_sum", 30, seed=0, split="train")
    again = planted_solutions("chain_sum", 30, seed=0)
    assert held == again  # deterministic
    assert {s.question for s in held}.isdisjoint({s.question for s in train})
    assert all(is_heldout("chain_sum", s.question) for s in held)
    assert not any(is_heldout("chain_sum", s.question) for s in train)
    other_seed = planted_solutions("chain_sum", 30, seed=1, split="train")
    assert not any(is_heldout("chain_sum", s.question) for s in other_seed)
    share = sum(is_heldout("chain_sum", f"q{i}") for i in range(2000)) / 2000
    assert 0.45 < share < 0.55


GSM_COMPUTATION = re.compile(r"((?:[$€£]?[\d.,]+\s*(?:[-+*/×÷]|\sx\s)\s*)+[$€£]?[\d.,]+)\s*=\s*([$€£]?-?[\d.,/]+)")


def _gsm_holds(step: str) -> list[bool]:
    """Each computation of a worked-solution line, evaluated here with sympy."""
    out = []
    for m in GSM_COMPUTATION.finditer(step.split(" The answer is")[0]):
        expr = re.sub(r"[$€£,]", "", m.group(1)).replace("×", "*").replace("÷", "/").replace(" x ", " * ")
        result = re.sub(r"[$€£,]", "", m.group(2))
        out.append(sympy.nsimplify(sympy.sympify(expr, rational=True)) == sympy.Rational(result))
    return out


def test_gsm_symbolic_solutions() -> None:
    solutions = planted_solutions("gsm_symbolic", 25, seed=1, max_scan=2000)
    assert len(solutions) == 50
    for correct, planted in zip(solutions[::2], solutions[1::2], strict=True):
        assert correct.answer == correct.gold
        assert all(all(_gsm_holds(s)) for s in correct.steps)
        k = planted.first_error
        assert planted.steps[:k] == correct.steps[:k] and planted.steps[k] != correct.steps[k]
        assert planted.answer != planted.gold
        first = _gsm_holds(planted.steps[k])[0]
        assert first == (planted.corruption == "copied_wrong_number"), planted
        assert all(all(_gsm_holds(s)) for s in planted.steps[k + 1:]), planted
