"""`ponder bench prm`'s arithmetic, computed by hand, and the symbolic judge on planted errors."""

from __future__ import annotations

import pytest

from benchmarks.prm import bench_judge, calibration, first_below, judge_metrics, kind_lines, planted_set, step_labels, \
    table_lines
from verifiers.planted import PlantedSolution
from verifiers.pool import PoolConfig, WorkerPool
from verifiers.step_reward import SymbolicChecker, SymbolicCheckerConfig, SymbolicReward


def sol(name: str, first_error: int | None, n: int = 3) -> PlantedSolution:
    return PlantedSolution(name, "t", "q", tuple(f"s{i}" for i in range(n)), first_error,
                           None if first_error is None else "wrong_arithmetic", "1", "1")


SOLUTIONS = [sol("A", None), sol("B", 1), sol("C", 0)]
SCORES = [(0.9, 0.8, 0.7), (0.9, 0.2, 0.6), (0.8, 0.4, 0.3)]


def test_step_labels_conventions() -> None:
    assert step_labels(SOLUTIONS[1]) == [True, False, None]
    assert step_labels(SOLUTIONS[1], all_after=True) == [True, False, False]
    assert step_labels(SOLUTIONS[0]) == [True, True, True]
    assert first_below([0.6, 0.5, 0.49], 0.5) == 2 and first_below([0.5], 0.5) is None


def test_metrics_by_hand() -> None:
    m = judge_metrics(SOLUTIONS, SCORES)
    # ProcessBench labels: right 0.9 0.8 0.7 0.9; wrong 0.2 (B's first error), 0.8 (C's).
    # Pairs right > wrong: vs 0.2 all 4; vs 0.8: 0.9, 0.9 win, 0.8 ties (1/2), 0.7 loses -> 6.5 / 8.
    assert m["step_auroc"] == pytest.approx(6.5 / 8)
    # Every step from the first error wrong: wrong 0.2 0.6 0.8 0.4 0.3; 0.9 beats all 5 (x2), 0.8 beats
    # 4 and ties 1, 0.7 beats 4 -> 18.5 / 20.
    assert m["step_auroc_all"] == pytest.approx(18.5 / 20)
    # first below 0.5: A none (right), B 1 (right), C 1 (planted 0: wrong)
    assert m["first_error_accuracy"] == pytest.approx(2 / 3)
    assert m["first_error_accuracy_erroneous"] == 0.5 and m["first_error_accuracy_correct"] == 1.0
    assert m["first_error_by_kind"] == {"wrong_arithmetic": {"accuracy": 0.5, "n": 2}, "correct": {"accuracy": 1.0, "n": 1}}
    # solution score = min: A 0.7 (right), B 0.2, C 0.3 (wrong) -> 1.0
    assert m["solution_auroc"] == 1.0
    assert m["mean_score_right"] == pytest.approx(3.3 / 4) and m["mean_score_wrong"] == pytest.approx(0.5)
    assert m["steps"] == 9 and m["solutions"] == 3


def test_calibration_by_hand() -> None:
    scores = [0.9, 0.8, 0.7, 0.9, 0.2, 0.8]
    labels = [True, True, True, True, False, False]
    c = calibration(scores, labels, num_bins=2)
    # bin [0, 0.5): 0.2 wrong -> |0 - 0.2| x 1/6; bin [0.5, 1]: mean 4.1 / 5 = 0.82, accuracy 4/5 -> 0.02 x 5/6
    assert c["ece"] == pytest.approx(0.2 / 6 + 0.02 * 5 / 6)
    assert c["brier"] == pytest.approx((0.01 + 0.04 + 0.09 + 0.01 + 0.04 + 0.64) / 6)
    assert [(b["count"], b["accuracy"]) for b in c["bins"]] == [(1, 0.0), (5, 0.8)]
    assert calibration([1.0], [True], num_bins=10)["bins"][0]["low"] == 0.9  # 1.0 falls in the last bin


async def test_symbolic_judge_finds_planted_arithmetic_errors() -> None:
    solutions = planted_set(["chain_sum"], 12, seed=2)
    with WorkerPool(PoolConfig(num_workers=2, preload=("sympy",))) as pool:
        run = await bench_judge("symbolic", SymbolicReward(SymbolicChecker(SymbolicCheckerConfig(), pool)), solutions)
        per = run.overall["first_error_by_kind"]
        for kind in ("wrong_arithmetic", "sign_error", "dropped_term"):
            assert per[kind]["accuracy"] == 1.0
        assert run.overall["first_error_accuracy_correct"] == 1.0
        # a copied number is consistent arithmetic: invisible to claims, found by provenance
        assert per["copied_wrong_number"]["accuracy"] == 0.0
        strict = SymbolicReward(SymbolicChecker(SymbolicCheckerConfig(provenance=True), pool))
        run2 = await bench_judge("symbolic+provenance", strict, solutions)
        assert run2.overall["first_error_by_kind"]["copied_wrong_number"]["accuracy"] > 0.5
    lines = table_lines([run, run2])
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|")
    assert len(lines) == 2 + 2 * 2 and "| symbolic | all | 24 |" in lines[3]
    assert kind_lines([run])[2].startswith("| symbolic | 1.000 (n=")


async def test_veto_over_a_replayed_judge() -> None:
    from benchmarks.prm import ReplayedScores
    from verifiers.step_reward import CombinedReward

    solutions = planted_set(["basic_arithmetic"], 8, seed=4)
    flat = [tuple(0.9 for _ in s.steps) for s in solutions]  # a judge that likes every step
    with WorkerPool(PoolConfig(num_workers=2, preload=("sympy",))) as pool:
        checker = SymbolicChecker(SymbolicCheckerConfig(), pool)
        base = await bench_judge("flat", ReplayedScores(solutions, flat), solutions)
        vetoed = await bench_judge("flat+veto", CombinedReward(ReplayedScores(solutions, flat), checker, "veto"),
                                   solutions)
    assert base.overall["first_error_accuracy_erroneous"] == 0.0 and base.overall["step_auroc"] == 0.5
    assert vetoed.overall["first_error_accuracy_correct"] == 1.0
    for s, row in zip(solutions, vetoed.scores, strict=True):
        if s.corruption in ("wrong_arithmetic", "sign_error", "dropped_term"):
            assert row[s.first_error] == 0.0 and all(x == 0.9 for x in row[: s.first_error])
