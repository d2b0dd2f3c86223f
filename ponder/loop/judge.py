"""Step judgement on solutions with planted first errors: scoring and the numbers.

Shared by ``ponder bench prm`` (``benchmarks.prm``: judges side by side, tables) and the loop's
``judge`` stage (each round's PRM on a small held-out planted set, shown in the report).
Solutions come from :func:`verifiers.planted.planted_solutions` (per problem, a correct
solution and one with one planted error; the held-out split by default). Any
:class:`~search.protocols.RewardModel` scores every step of every solution (one ``score`` call
per solution, all steps at once), and :func:`judge_metrics` reports:

- **step AUROC**: step scores against step labels, ProcessBench's way: the steps before the
  first error are right, the first error is wrong, the steps after it are left out (their
  label depends on a convention); every step of a correct solution is right. **step AUROC
  (all)** labels every step from the first error on wrong (the Math-Shepherd convention).
- **first-error accuracy**: the first step scored below ``threshold`` (0.5) must be the
  planted one, and no step of a correct solution may score below it. Reported overall, on
  the erroneous and the correct solutions apart, and per corruption kind.
- **solution AUROC**: the solution's score (the minimum over its steps) against its
  correctness.
- **calibration** over the steps of the step-AUROC labelling: expected calibration error
  over ``num_bins`` equal-width bins of the score, ``sum_b n_b / N * |acc_b - mean score_b|``,
  the Brier score, and the reliability bins themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from ponder.loop.metrics import auroc
from search.protocols import Problem, RewardModel
from verifiers.planted import CORRUPTIONS, PlantedSolution, planted_solutions

JUDGE_FILE = "judge.json"
"""The judge stage's numbers, in ``LOOP_DIR/round-<r>/judge/``."""


def planted_set(tasks: Sequence[str], num_problems: int, seed: int, split: str = "heldout") -> list[PlantedSolution]:
    """``num_problems`` problems of each task (two solutions each), the given split."""
    return [s for task in tasks for s in planted_solutions(task, num_problems, seed=seed, split=split)]  # type: ignore[arg-type]


async def score_solutions(reward_model: RewardModel, solutions: Sequence[PlantedSolution],
                          concurrency: int = 16) -> list[tuple[float, ...]]:
    """Every step's score of every solution (one ``score`` call per solution, ``concurrency``
    at once). Each step is scored as the search would pass it: its text and a blank line."""
    gate = asyncio.Semaphore(concurrency)

    async def one(s: PlantedSolution) -> tuple[float, ...]:
        async with gate:
            steps = [f"{t}\n\n" for t in s.steps[:-1]] + [s.steps[-1]]
            out = await reward_model.score(Problem(s.id, s.question), [steps])
        (row,) = out.scores
        if len(row) != len(s.steps):
            raise ValueError(f"{s.id}: {len(row)} scores for {len(s.steps)} steps")
        return tuple(float(x) for x in row)

    return list(await asyncio.gather(*(one(s) for s in solutions)))


def first_below(scores: Sequence[float], threshold: float) -> int | None:
    """Index of the first score below ``threshold``, or None."""
    return next((i for i, x in enumerate(scores) if x < threshold), None)


def step_labels(solution: PlantedSolution, *, all_after: bool = False) -> list[bool | None]:
    """Per step: right (True), wrong (False) or left out (None). ``all_after``: every step from
    the first error on is wrong; else only the first error (later steps left out)."""
    if solution.first_error is None:
        return [True] * len(solution.steps)
    k = solution.first_error
    after: bool | None = False if all_after else None
    return [True] * k + [False] + [after] * (len(solution.steps) - k - 1)


def calibration(scores: Sequence[float], labels: Sequence[bool], num_bins: int = 10) -> dict[str, Any]:
    """Expected calibration error, Brier score and reliability bins of ``scores`` in [0, 1].

    Bin b holds the scores in ``[b / num_bins, (b + 1) / num_bins)`` (the last bin includes 1).

    Returns:
        ``{"ece", "brier", "bins": [{"low", "high", "count", "mean_score", "accuracy"}, ...]}``
        (empty bins left out; ece and brier None when there is no step).
    """
    if len(scores) != len(labels):
        raise ValueError(f"calibration: {len(scores)} scores but {len(labels)} labels")
    groups: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for s, y in zip(scores, labels, strict=True):
        groups[min(int(s * num_bins), num_bins - 1)].append((s, y))
    bins = []
    ece = 0.0
    for b in sorted(groups):
        items = groups[b]
        mean = sum(s for s, _ in items) / len(items)
        acc = sum(1 for _, y in items if y) / len(items)
        ece += len(items) / len(scores) * abs(acc - mean)
        bins.append({"low": b / num_bins, "high": (b + 1) / num_bins, "count": len(items),
                     "mean_score": mean, "accuracy": acc})
    brier = sum((s - float(y)) ** 2 for s, y in zip(scores, labels, strict=True)) / len(scores) if scores else None
    return {"ece": ece if scores else None, "brier": brier, "bins": bins}


def judge_metrics(solutions: Sequence[PlantedSolution], scores: Sequence[Sequence[float]], *,
                  threshold: float = 0.5, num_bins: int = 10) -> dict[str, Any]:
    """The benchmark's numbers (see the module docstring) for one judge's ``scores``."""
    if len(solutions) != len(scores):
        raise ValueError(f"{len(solutions)} solutions but {len(scores)} score rows")
    prefix_s, prefix_y, all_s, all_y = [], [], [], []
    hits: dict[str, list[bool]] = defaultdict(list)
    sol_scores, sol_labels = [], []
    for s, row in zip(solutions, scores, strict=True):
        for x, y in zip(row, step_labels(s), strict=True):
            if y is not None:
                prefix_s.append(x)
                prefix_y.append(y)
        for x, y in zip(row, step_labels(s, all_after=True), strict=True):
            all_s.append(x)
            all_y.append(bool(y))
        hit = first_below(row, threshold) == s.first_error
        hits["all"].append(hit)
        hits["erroneous" if s.first_error is not None else "correct"].append(hit)
        if s.corruption is not None:
            hits[s.corruption].append(hit)
        sol_scores.append(min(row))
        sol_labels.append(s.correct)
    share = {k: (sum(v) / len(v), len(v)) for k, v in hits.items()}
    return {
        "solutions": len(solutions),
        "steps": sum(len(r) for r in scores),
        "step_auroc": auroc(prefix_s, prefix_y),
        "step_auroc_all": auroc(all_s, all_y),
        "first_error_accuracy": share.get("all", (None, 0))[0],
        "first_error_accuracy_erroneous": share.get("erroneous", (None, 0))[0],
        "first_error_accuracy_correct": share.get("correct", (None, 0))[0],
        "first_error_by_kind": {k: {"accuracy": share[k][0], "n": share[k][1]}
                                for k in (*CORRUPTIONS, "correct") if k in share},
        "solution_auroc": auroc(sol_scores, sol_labels),
        "calibration": calibration(prefix_s, prefix_y, num_bins),
        "mean_score_right": _mean([x for x, y in zip(prefix_s, prefix_y, strict=True) if y]),
        "mean_score_wrong": _mean([x for x, y in zip(prefix_s, prefix_y, strict=True) if not y]),
        "threshold": threshold,
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


class JudgeBenchConfig(BaseModel):
    """The loop's ``judge`` stage: each round's PRM on a small, fixed planted set of the
    held-out split (the same set every round, so the rounds compare)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(default_factory=lambda: ["chain_sum", "basic_arithmetic"],
                             description="Planted tasks (verifiers.planted.TASKS).")
    num_problems: int = Field(10, ge=1, description="Problems per task; each gives a correct and a planted solution.")
    seed: int = Field(0, description="reasoning-gym seed and the corruptions' seed.")
    threshold: float = Field(0.5, gt=0, lt=1, description="A step scored below this is judged wrong.")
    concurrency: int = Field(16, ge=1, description="Solutions scored at once.")

    @pydantic.field_validator("tasks")
    @classmethod
    def _planted_tasks(cls, tasks: list[str]) -> list[str]:
        from verifiers.planted import TASKS

        unknown = [t for t in tasks if t not in TASKS]
        if unknown or not tasks:
            raise ValueError(f"tasks must be planted tasks ({', '.join(TASKS)}); got {tasks}")
        return tasks


async def judge_planted(reward_model: RewardModel, config: JudgeBenchConfig) -> dict[str, Any]:
    """Scores the held-out planted set of ``config`` with ``reward_model``.

    Returns:
        ``{"settings", "solutions", "overall": judge_metrics, "by_task": {task: judge_metrics},
        "wall_seconds"}`` (JSON-ready).
    """
    solutions = planted_set(config.tasks, config.num_problems, config.seed, "heldout")
    started = time.perf_counter()
    scores = await score_solutions(reward_model, solutions, config.concurrency)
    wall = time.perf_counter() - started
    by_task = {}
    for task in config.tasks:
        idx = [i for i, s in enumerate(solutions) if s.task == task]
        by_task[task] = judge_metrics([solutions[i] for i in idx], [scores[i] for i in idx],
                                      threshold=config.threshold)
    return {"settings": config.model_dump(mode="json"), "solutions": len(solutions),
            "overall": judge_metrics(solutions, scores, threshold=config.threshold), "by_task": by_task,
            "wall_seconds": round(wall, 2)}
