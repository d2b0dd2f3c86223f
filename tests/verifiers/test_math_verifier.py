"""MathVerifier: verdict tables, adversarial answers, timeouts (shared worker pool)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from search.protocols import ConfigError, Verdict, VerdictStatus, Verifier
from verifiers.math import MathVerifier, MathVerifierConfig, check_math, normalize
from verifiers.pool import PoolConfig, WorkerPool

OK, WRONG = VerdictStatus.CORRECT, VerdictStatus.INCORRECT
UNPARSED, TIMEOUT = VerdictStatus.UNPARSEABLE, VerdictStatus.TIMEOUT


@pytest.fixture(scope="module")
def verifier() -> MathVerifier:
    return MathVerifier()


@pytest.fixture(scope="module")
def timeout_pool() -> WorkerPool:
    """A pool of its own for the tests that get workers killed (math_verify preloaded only,
    so replacements start quickly)."""
    with WorkerPool(PoolConfig(num_workers=2, preload=("math_verify",))) as pool:
        yield pool


VERDICT_TABLE = [
    # integers, GSM8K style
    ("72", "Natalia sold 48 + 24 = 72 clips.\n#### 72", OK),
    ("72", "#### 73", WRONG),
    (72, "The answer is 72.", OK),
    ("1000", "so the total is 1,000", OK),
    # fractions and decimals
    (r"\frac{1}{2}", "The answer is 0.5", OK),
    (r"\frac{1}{2}", r"so \boxed{\dfrac{1}{2}}", OK),
    ("0.5", r"\boxed{\frac{1}{2}}", OK),
    ("1/2", r"\boxed{\frac12}", OK),
    (r"\frac{1}{3}", r"\boxed{\frac{2}{6}}", OK),
    (r"\frac{1}{3}", "The answer is 0.33", WRONG),
    (r"\frac{3}{4}", r"\boxed{\frac{4}{3}}", WRONG),
    (0.25, r"\boxed{\frac{1}{4}}", OK),
    # latex vs plain
    (r"\sqrt{2}", r"\boxed{2^{1/2}}", OK),
    (r"2\sqrt{2}", r"\boxed{\sqrt{8}}", OK),
    ("x + 1", r"\boxed{1 + x}", OK),
    ("x^2 - 1", r"\boxed{(x-1)(x+1)}", OK),
    (r"\pi", r"\boxed{3.14159}", WRONG),
    (r"(1, 2)", r"\boxed{(1,2)}", OK),
    (r"\{1, 2\}", r"\boxed{\{2, 1\}}", OK),
    ("x = 3", r"the answer is $3$", OK),
    ("10\\%", r"\boxed{10\%}", OK),
    # wrong answers
    ("5", r"\boxed{6}", WRONG),
    ("-3", "The answer is 3.", WRONG),
    (r"\frac{1}{2}", r"\boxed{\frac{1}{3}}", WRONG),
    ("x + 1", r"\boxed{x - 1}", WRONG),
    # no answer at all
    ("5", "I am not sure how to proceed with this problem.", UNPARSED),
    ("5", "", UNPARSED),
]


@pytest.mark.parametrize(("gold", "candidate", "expected"), VERDICT_TABLE)
def test_verdict_table(verifier: MathVerifier, gold: object, candidate: str,
                       expected: VerdictStatus) -> None:
    verdict = verifier.verify(gold, candidate)
    assert isinstance(verdict, Verdict)
    assert verdict.status is expected, verdict


def test_implements_the_protocol(verifier: MathVerifier) -> None:
    assert isinstance(verifier, Verifier)
    assert verifier.extract("so \\boxed{7}") == "7"


def test_exact_match_fast_path_needs_no_worker() -> None:
    class NoPool:
        def run(self, *args: object, **kwargs: object) -> object:
            raise AssertionError("the pool must not be used for an exact match")

    fast = MathVerifier(pool=NoPool())  # type: ignore[arg-type]
    verdict = fast.verify(r"\dfrac{1}{2}", r"The answer is $\frac{1}{2}$.")
    assert verdict.status is OK and verdict.detail == "exact match"
    assert normalize(r" \left( 1,\, 2 \right) ") == "(1,2)"
    assert normalize("12") != normalize("1 2 3")


def test_verdict_reports_the_extracted_answer(verifier: MathVerifier) -> None:
    verdict = verifier.verify("3", r"it is \boxed{4}")
    assert (verdict.status, verdict.extracted, verdict.correct) == (WRONG, "4", False)


@pytest.mark.parametrize(
    "template",
    [
        "{payload}",
        "\\boxed{{{payload}}}",
        "The answer is {payload}",
        "The answer is ${payload}$.",
        "#### {payload}",
        "Answer: {payload} + 1",
    ],
)
def test_model_text_is_never_executed(verifier: MathVerifier, tmp_path: Path,
                                      template: str) -> None:
    target = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {target}')"
    verdict = verifier.verify("-7777777", template.format(payload=payload))
    assert not target.exists()
    assert verdict.status is not OK


@pytest.mark.parametrize("answer", [r"10^10^10^10", r"9^{9^{9^{9}}}", r"(10^{10})!"])
def test_huge_expressions_are_bounded_in_time(timeout_pool: WorkerPool, answer: str) -> None:
    verifier = MathVerifier(MathVerifierConfig(timeout_s=2.0), pool=timeout_pool)
    start = time.monotonic()
    verdict = verifier.verify("5", f"The answer is $\\boxed{{{answer}}}$")
    elapsed = time.monotonic() - start
    assert verdict.status in (TIMEOUT, WRONG), verdict
    # 2 s timeout, plus possibly waiting for a worker that an earlier timeout replaced;
    # without the hard timeout these never finish
    assert elapsed < 15.0


def test_tower_of_powers_times_out_and_says_so(timeout_pool: WorkerPool) -> None:
    verifier = MathVerifier(MathVerifierConfig(timeout_s=1.0), pool=timeout_pool)
    verdict = verifier.verify("5", r"\boxed{9^{9^{9^{9}}}}")
    assert verdict.status is TIMEOUT
    assert verdict.extracted == "9^{9^{9^{9}}}"
    assert "1 s" in verdict.detail


def test_hundred_thousand_character_candidates(verifier: MathVerifier) -> None:
    start = time.monotonic()
    assert verifier.verify("7", "blah " * 20_000 + "so \\boxed{7}").status is OK
    assert verifier.verify("7", "x" * 100_000).status is UNPARSED
    assert verifier.verify("7", "\\boxed{" * 20_000).status is not OK
    assert verifier.verify("7", "9" * 100_000).status is WRONG
    assert time.monotonic() - start < 10


def test_only_the_tail_of_the_candidate_counts() -> None:
    verifier = MathVerifier(MathVerifierConfig(max_candidate_chars=100))
    assert verifier.verify("7", "\\boxed{7}" + " " * 200).status is UNPARSED


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (b"The answer is \xff\xfe 12", OK),
        ("The answer is 12".encode("utf-16"), OK),  # decoded with UNPARSED+FFFD, NULs dropped
        (b"\x80\x81\x82", UNPARSED),
        ("surrogate \udc80 then \\boxed{12}", OK),
        ("nul\x00 bytes \\boxed{12}", OK),
    ],
)
def test_invalid_utf8_and_bytes(verifier: MathVerifier, candidate: str | bytes,
                                expected: VerdictStatus) -> None:
    assert verifier.verify("12", candidate).status is expected


@pytest.mark.parametrize("gold", [None, True, ["1"], "", "   "])
def test_bad_gold_is_a_config_error(verifier: MathVerifier, gold: object) -> None:
    with pytest.raises(ConfigError):
        verifier.verify(gold, "\\boxed{1}")


def test_unparseable_gold_is_reported() -> None:
    assert check_math("\\frac{", "3")[0] in (UNPARSED.value, WRONG.value)
    status, detail = check_math("3", "\\boxed{}")
    assert status == UNPARSED.value and "answer" in detail


async def test_averify_matches_verify_and_leaves_the_loop_free(
        verifier: MathVerifier, timeout_pool: WorkerPool) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    verdicts = await asyncio.gather(
        verifier.averify(r"\frac{1}{2}", "so 0.5"),
        verifier.averify("3", r"\boxed{4}"),
        MathVerifier(MathVerifierConfig(timeout_s=1.0), pool=timeout_pool).averify(
            "5", r"\boxed{9^{9^{9^{9}}}}"),
    )
    task.cancel()
    assert [v.status for v in verdicts] == [OK, WRONG, TIMEOUT]
    assert ticks >= 20  # the loop kept running while the checks (~1 s timeout) ran
