"""Planted solutions of reasoning-gym problems: each problem's correct solution and a copy with one
planted error (see :mod:`verifiers.planted`).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence
from fractions import Fraction

from verifiers.planted.arithmetic import arithmetic_steps, show
from verifiers.planted.corruptions import CORRUPTIONS, Corruption
from verifiers.planted.equations import equation_steps
from verifiers.planted.gsm import gsm_steps
from verifiers.planted.split import Split, is_heldout

TASKS = ("chain_sum", "basic_arithmetic", "simple_equations", "gsm_symbolic")


@dataclasses.dataclass(frozen=True)
class PlantedSolution:
    """One solution of one problem, correct or with one planted error.

    Attributes:
        id: ``task/seed/index/correct|<corruption>``.
        task: The reasoning-gym task.
        question: The problem statement.
        steps: The solution's steps, in order (no delimiters).
        first_error: Index of the planted erroneous step; None for a correct solution.
        corruption: What was planted; None for a correct solution.
        answer: The final answer the solution states.
        gold: The problem's gold answer.
    """

    id: str
    task: str
    question: str
    steps: tuple[str, ...]
    first_error: int | None
    corruption: Corruption | None
    answer: str
    gold: str

    @property
    def correct(self) -> bool:
        return self.first_error is None


def _solution(task: str, entry: dict, corruption: Corruption | None, at: int,
              rng: random.Random) -> tuple[list[str], Fraction] | None:
    meta = entry["metadata"]
    if task in ("chain_sum", "basic_arithmetic"):
        return arithmetic_steps(meta["expression"], corruption, at, rng)
    if task == "simple_equations":
        return equation_steps(meta["equation"], meta["variable"], corruption, at, rng)
    if task == "gsm_symbolic":
        return gsm_steps(entry["question"], meta["answer_cot"], corruption, at, rng)
    raise ValueError(f"no planted solutions for task {task!r}; choose from {', '.join(TASKS)}")


def planted_solutions(task: str, num_problems: int, *, seed: int = 0, split: Split = "heldout",
                      min_steps: int = 2, corruptions: Sequence[Corruption] = CORRUPTIONS,
                      max_scan: int = 20_000) -> list[PlantedSolution]:
    """For each of ``num_problems`` problems of ``split``: its correct solution and one with a
    planted error (corruption kinds in turn, the step chosen by ``seed``).

    Args:
        task: ``chain_sum``, ``basic_arithmetic``, ``simple_equations`` or ``gsm_symbolic``.
        num_problems: Problems wanted (each gives two solutions).
        seed: reasoning-gym dataset seed and the corruption choices' seed.
        split: ``heldout`` (benchmarks) or ``train`` (see :func:`is_heldout`).
        min_steps: Problems whose solution has fewer steps are skipped.
        corruptions: The kinds to plant, in turn.
        max_scan: reasoning-gym problems looked at, at most.

    Returns:
        ``2 * num_problems`` solutions (fewer when the scan runs out), correct first per pair.
    """
    import reasoning_gym

    if task not in TASKS:
        raise ValueError(f"no planted solutions for task {task!r}; choose from {', '.join(TASKS)}")
    if not corruptions:
        raise ValueError("corruptions: at least one kind is needed")
    dataset = reasoning_gym.create_dataset(task, size=max_scan, seed=seed)
    rng = random.Random(f"{task}/{seed}")
    out: list[PlantedSolution] = []
    kinds = iter(_cycle(corruptions))
    for index in range(max_scan):
        if len(out) >= 2 * num_problems:
            break
        entry = dataset[index]
        if is_heldout(task, entry["question"]) != (split == "heldout"):
            continue
        correct = _solution(task, entry, None, 0, rng)
        if correct is None or len(correct[0]) < min_steps:
            continue
        steps, answer = correct
        if show(answer) != str(entry["answer"]).strip():
            continue  # our reading of the task disagrees with its gold: leave the problem out
        kind = next(kinds)
        planted = None
        for _ in range(8):  # a corruption that changes nothing (dropping a 0) is drawn again
            at = rng.randrange(len(steps))
            planted = _solution(task, entry, kind, at, rng)
            if planted is not None:
                break
        if planted is None:
            continue
        base = f"{task}/{seed}/{index}"
        gold = str(entry["answer"])
        out.append(PlantedSolution(f"{base}/correct", task, entry["question"], tuple(steps), None, None,
                                   show(answer), gold))
        out.append(PlantedSolution(f"{base}/{kind}", task, entry["question"], tuple(planted[0]), at, kind,
                                   show(planted[1]), gold))
    return out


def _cycle(items: Sequence[Corruption]) -> Iterator[Corruption]:
    while True:
        yield from items
