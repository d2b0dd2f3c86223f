"""The symbolic step checker: (step text, expected status) tables, hostile input, timeouts."""

from __future__ import annotations

import time

import pytest

from search.protocols import Problem
from verifiers.pool import PoolConfig, WorkerPool
from verifiers.step_reward import SymbolicChecker, SymbolicCheckerConfig
from verifiers.steps import MAX_CLAIMS_PER_STEP, check_claim, read_claims


@pytest.fixture(scope="module")
def pool() -> WorkerPool:
    with WorkerPool(PoolConfig(num_workers=2, preload=("sympy",))) as p:
        yield p


@pytest.fixture(scope="module")
def checker(pool: WorkerPool) -> SymbolicChecker:
    return SymbolicChecker(SymbolicCheckerConfig(timeout_s=10.0), pool=pool)


NO_QUESTION = Problem("q", "Compute it.")

STEPS = [
    # true claims
    ("3 + 4 = 7", "checked_true"),
    ("We have 12 + 5 = 17 apples.", "checked_true"),
    (r"$\frac{1}{2} + \frac{1}{3} = \frac{5}{6}$", "checked_true"),
    (r"\dfrac{3}{4} \cdot 8 = 6", "checked_true"),
    ("2x + 3 = 11 so x = 4", "checked_true"),
    ("2x + 3 = 11, so 2x = 8 and x = 8 / 2 = 4", "checked_true"),
    ("12 = 3 + 9 = 4 * 3", "checked_true"),
    ("35 × 3 = 105 kiwi", "checked_true"),
    ("1,000 + 2,000 = 3,000", "checked_true"),
    ("3 x 4 = 12", "checked_true"),
    ("2 - -1 = 3", "checked_true"),
    ("( 56 + -33 ) - 84 = -61", "checked_true"),
    ("10 / 3 = 3.33", "checked_true"),
    ("1/3 ≈ 0.33", "checked_true"),
    ("5 > 3", "checked_true"),
    (r"2 \le 3", "checked_true"),
    ("7 ≠ 8", "checked_true"),
    ("160 * 30% = 48", "checked_true"),
    (r"\sqrt{16} = 4", "checked_true"),
    ("2(x + 3) = 2x + 6", "checked_true"),
    ("2^{10} = 1024", "checked_true"),
    ("Step 2: 5 * 6 = 30.", "checked_true"),
    ("Michael earned 53 x €13 = €689 for selling cupcakes.", "checked_true"),
    ("So, she paid $13,400 + $33,500 = $46,900 in fees.", "checked_true"),
    # false claims
    ("3 + 4 = 8", "checked_false"),
    (r"$\frac{1}{2} + \frac{1}{3} = \frac{2}{5}$", "checked_false"),
    ("2x + 3 = 11 so x = 5", "checked_false"),
    ("2x + 3 = 11 so 2x = 14", "checked_false"),
    ("12 = 3 + 9 = 13", "checked_false"),
    ("3 x 4 = 13", "checked_false"),
    ("10 / 3 = 3", "checked_false"),
    ("So, Michael earned €689 + €896 = €689 for two days.", "checked_false"),
    ("So far, this is a total of 96 + 16 = 80 letters.", "checked_false"),
    ("David is penpals with 11-5=16 people", "checked_false"),
    ("The loaves cost $16 - $6 = $22 more than the biscuits.", "checked_false"),
    ("10 / 3 = 3.5", "checked_false"),
    ("2 >= 3", "checked_false"),
    ("7 ≠ 7", "checked_false"),
    ("3 + 4 = 7 and then 7 * 2 = 15", "checked_false"),
    ("57 + 87 = 144, 144 + 70 = 204", "checked_false"),
    # nothing checkable
    ("We add the numbers together.", "unchecked"),
    ("The answer is 7.", "unchecked"),
    ("a = b = c", "unchecked"),
    ("x + y = 5", "unchecked"),
    ("x > 3", "unchecked"),
    ("Let x = 4.", "unchecked"),  # a premise: no earlier equation in x
    ("3 times 4 = 12", "unchecked"),  # "4 = 12" is not what the text claims
    ("The sum of 3 and 4 = 8", "unchecked"),
    ("30% of 160 = 48", "unchecked"),
    ("12 = 3 times 4", "unchecked"),
    ("12 = 50% of 24", "unchecked"),
    ("Half of 10 = 5", "unchecked"),
    ("We add 3 to 5 = 8", "unchecked"),
    ("1 / 0 = 5", "unchecked"),
    ("3 4 = 34", "unchecked"),
]

HOSTILE = [
    "9^9^9^9 = 1",
    "2^100000 = 1",
    "10**10**10 = 5",
    "x^{1000} = 1",
    "(" * 3000 + "1" + ")" * 3000 + " = 1",
    "(((((((((((((((((((((((((((((1))))))))))))))))))))))))))))) = 1",
    "1 + " * 20000 + "1 = 2",
    "9" * 100 + " = 1",
    "= = = = = =",
    "\x00\ud800 garbage ∑∫ = ≠ ≈",
    "__import__('os').system('rm -rf /') = 1",
    "exec(1) = 1",
    r"\frac{\frac{\frac{1}{2}{3}{4} = 1",
    r"\frac{" * 500 + "1",
    "{" * 2000 + "}" * 2000 + " = 1",
    "sqrt sqrt sqrt = 2",
    "\\frac{" * 300 + "1" + "}{2}" * 300 + " = 1",  # deeper than MAX_DEPTH
    "^{" * 300 + "2" + "}" * 300 + " = 1",
    "\\frac{1}{2} " * 2000 + " = 1",
    "%%% = 1",
]


@pytest.mark.parametrize(("text", "expected"), STEPS)
async def test_step_table(checker: SymbolicChecker, text: str, expected: str) -> None:
    (check,) = await checker.check(NO_QUESTION, [text])
    assert check.status == expected, check


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_steps_are_unchecked_and_quick(checker: SymbolicChecker, text: str) -> None:
    started = time.perf_counter()
    (check,) = await checker.check(NO_QUESTION, [text])
    assert check.status == "unchecked", check
    assert time.perf_counter() - started < 10.0


def test_reading_is_linear_and_capped() -> None:
    started = time.perf_counter()
    claims = read_claims("1 = 1, " * 10_000 + "x" * 1_000_000)
    assert len(claims) == MAX_CLAIMS_PER_STEP
    assert time.perf_counter() - started < 2.0


def test_reading_never_evaluates() -> None:
    # names longer than one letter end a math span, so no call can ever be read
    assert read_claims("__import__('os').system('ls') = 0") == []
    assert read_claims("print(1) = 1") == []


async def test_equations_are_checked_against_the_question(checker: SymbolicChecker) -> None:
    problem = Problem("e", "Solve for e: 56 - 98*e = -1218")
    good = await checker.check(problem, ["98e = 56 + 1218 = 1274", "e = 1274 / 98 = 13"])
    bad = await checker.check(problem, ["98e = 1218 - 56", "e = 1162 / 98"])
    assert [c.status for c in good] == ["checked_true", "checked_true"]
    assert bad[0].status == "checked_false"
    assert bad[0].claims[0].detail == "e in ['83/7'], but 56 - 98 * e = - 1218 gives ['13']"
    # the step after follows from the wrong one: locally true
    assert bad[1].status == "checked_true"


async def test_a_slow_claim_times_out_and_the_step_is_unchecked(pool: WorkerPool) -> None:
    checker = SymbolicChecker(SymbolicCheckerConfig(timeout_s=1.0), pool=pool)
    problem = Problem("slow", "Solve x^31 - x^17 + 3x - 7 = 0.")
    started = time.perf_counter()
    (check,) = await checker.check(problem, ["x^30 + 2x^11 - 5 = 0"])
    assert time.perf_counter() - started < 8.0
    assert check.status == "unchecked"
    assert [c.status for c in check.claims] == ["timeout"]
    assert checker.timeouts == 1
    (again,) = await checker.check(NO_QUESTION, ["3 + 4 = 7"])  # the pool replaced the worker
    assert again.status == "checked_true"


def test_check_claim_directly() -> None:
    (claim,) = read_claims("10 / 4 = 2.5")
    assert check_claim(claim) == ("true", "holds")
    (claim,) = read_claims("10 / 4 = 2.4")
    assert check_claim(claim)[0] == "false"


async def test_provenance_flags_a_number_copied_wrong(pool: WorkerPool) -> None:
    problem = Problem("c", "State the final answer: 57 + 87 - 70 =")
    steps = ["57 + 87 = 144", "154 - 70 = 84. The answer is 84."]
    plain = await SymbolicChecker(SymbolicCheckerConfig(timeout_s=10.0), pool=pool).check(problem, steps)
    assert [c.status for c in plain] == ["checked_true", "checked_true"]
    strict = SymbolicChecker(SymbolicCheckerConfig(timeout_s=10.0, provenance=True), pool=pool)
    found = await strict.check(problem, steps)
    assert [c.status for c in found] == ["checked_true", "checked_false"]
    assert found[1].claims[0].detail.startswith("unsupported: 154")
    # results of earlier steps and claims, and negative results, are known numbers
    ok = await strict.check(problem, ["57 + 87 = 144, 144 - 70 = 74", "74 - 100 = -26"])
    assert [c.status for c in ok] == ["checked_true", "checked_false"]
    assert (await strict.check(problem, ["57 - 87 = -30", "-30 - 70 = -100"]))[1].status == "checked_true"
