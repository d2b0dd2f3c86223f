"""``ponder bench prm``: how well a step judge finds planted first errors.

Judges side by side on one planted set (``planted_set``), per task and over all, with the
numbers of :mod:`ponder.loop.judge` (step AUROC, first-error accuracy, solution AUROC,
calibration), which the loop's ``judge`` stage shares; ``ReplayedScores`` replays a judge's
scores so a combination rule over it is measured on exactly those scores.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from ponder.loop.judge import (
    calibration,
    first_below,
    judge_metrics,
    planted_set,
    score_solutions,
    step_labels,
)
from search.protocols import Problem, RewardModel, StepScores, Usage
from verifiers.planted import CORRUPTIONS, PlantedSolution

__all__ = ["JudgeRun", "ReplayedScores", "bench_judge", "calibration", "first_below", "judge_metrics", "kind_lines",
           "planted_set", "score_solutions", "step_labels", "table_lines"]


@dataclasses.dataclass
class JudgeRun:
    """One judge on one planted set: its name, the metrics per task and over all, wall seconds,
    and every solution's step scores (in the set's order)."""

    judge: str
    by_task: dict[str, dict[str, Any]]
    overall: dict[str, Any]
    wall_seconds: float
    scores: list[tuple[float, ...]] = dataclasses.field(default_factory=list)


class ReplayedScores:
    """A :class:`~search.protocols.RewardModel` that answers with a finished run's scores (by
    solution id), so a combination rule over a judge is measured on exactly its scores."""

    def __init__(self, solutions: Sequence[PlantedSolution], scores: Sequence[Sequence[float]]) -> None:
        self.by_id = {s.id: tuple(row) for s, row in zip(solutions, scores, strict=True)}

    async def score(self, problem: Problem, paths: Sequence[Sequence[str]],
                    first: Sequence[int] | None = None) -> StepScores:
        starts = list(first) if first is not None else [0] * len(paths)
        row = self.by_id[problem.id]
        return StepScores(tuple(row[k:len(p)] for p, k in zip(paths, starts, strict=True)), Usage())


async def bench_judge(name: str, reward_model: RewardModel, solutions: Sequence[PlantedSolution], *,
                      threshold: float = 0.5, concurrency: int = 16) -> JudgeRun:
    """Scores ``solutions`` with ``reward_model`` and computes the metrics per task and overall."""
    started = time.perf_counter()
    scores = await score_solutions(reward_model, solutions, concurrency)
    wall = time.perf_counter() - started
    tasks = sorted({s.task for s in solutions})
    by_task = {}
    for task in tasks:
        idx = [i for i, s in enumerate(solutions) if s.task == task]
        by_task[task] = judge_metrics([solutions[i] for i in idx], [scores[i] for i in idx], threshold=threshold)
    return JudgeRun(name, by_task, judge_metrics(solutions, scores, threshold=threshold), wall, scores)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table_lines(runs: Sequence[JudgeRun]) -> list[str]:
    """A markdown table: one row per judge and task (and all tasks), the headline numbers."""
    lines = ["| judge | task | solutions | step AUROC | step AUROC (all) | first-error acc | on erroneous | "
             "on correct | solution AUROC | ECE | wall s |", "|---" * 11 + "|"]
    for run in runs:
        for task, m in [*run.by_task.items(), ("all", run.overall)]:
            wall = f"{run.wall_seconds:.1f}" if task == "all" else ""
            lines.append(
                f"| {run.judge} | {task} | {m['solutions']} | {_f(m['step_auroc'])} | {_f(m['step_auroc_all'])} | "
                f"{_f(m['first_error_accuracy'])} | {_f(m['first_error_accuracy_erroneous'])} | "
                f"{_f(m['first_error_accuracy_correct'])} | {_f(m['solution_auroc'])} | "
                f"{_f(m['calibration']['ece'])} | {wall} |")
    return lines


def kind_lines(runs: Sequence[JudgeRun]) -> list[str]:
    """A markdown table of first-error accuracy per corruption kind (all tasks together)."""
    kinds = [*CORRUPTIONS, "correct"]
    lines = ["| judge | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for run in runs:
        per = run.overall["first_error_by_kind"]
        cells = [f"{_f(per[k]['accuracy'])} (n={per[k]['n']})" if k in per else "-" for k in kinds]
        lines.append(f"| {run.judge} | " + " | ".join(cells) + " |")
    return lines
