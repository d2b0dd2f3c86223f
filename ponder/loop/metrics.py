"""The arithmetic of the loop report: pass@k, diversity, PRM discrimination, label balance,
steps per solution.

Pure functions of traces, labels and numbers (no files, no models), each checkable by hand.

A *sample* of a problem is an end leaf of its search tree (``search.aggregate.end_leaves``:
terminal or closed by an end gate, not errored): the N chains of cot / self-consistency /
best-of-N, the finished beams of a step beam. A sample without an extracted answer counts as
an incorrect sample (it stated no answer); chains cut at the token budget are not end leaves
and are not samples. A sample's correctness is its node's ``scores["verifier"]`` (>= 0.5 is
correct) when present, else the answer of ``verify_fn`` (evaluation after the search: using
the gold answers here is fine), else unknown (left out of every count).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from search.aggregate import end_leaves
from search.labels.records import StepLabel
from search.trace import SearchTrace
from training.export.sft import VerifyFn

DEFAULT_REWARD_KEY = "prm"
"""Where reward-model step scores are stored on nodes (``SearchContext.reward_key``)."""
PASS_K_DEFAULT = (1, 4, 8)
"""The k of the pass@k columns of the report."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator of Chen et al. (2021): 1 - C(n - c, k) / C(n, k).

    The chance that at least one of k samples drawn without replacement from n samples, c of
    them correct, is correct.

    Args:
        n: Samples drawn for the problem (>= 1).
        c: Correct samples among them, in [0, n].
        k: Samples allowed, in [1, n].

    Returns:
        pass@k in [0, 1].

    Raises:
        ValueError: Counts out of range.
    """
    if not (n >= 1 and 0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs n >= 1, 0 <= c <= n, 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> tuple[float | None, int]:
    """pass@k averaged over the problems that drew at least k samples.

    Args:
        counts: ``(n, c)`` per problem.
        k: Samples allowed (>= 1).

    Returns:
        The mean (None when no problem has k samples) and how many problems it covers.
    """
    values = [pass_at_k(n, c, k) for n, c in counts if n >= k]
    return (sum(values) / len(values) if values else None), len(values)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` against binary ``labels`` (Mann–Whitney U).

    AUROC = (R+ - n+ (n+ + 1) / 2) / (n+ n-), where R+ is the sum of the ranks (1-based, in
    ascending score order, tied scores sharing their mean rank) of the positives. Equals the
    chance that a random positive scores above a random negative, ties counting one half.

    Args:
        scores: One score per item (higher = more likely positive).
        labels: True for a positive item.

    Returns:
        AUROC in [0, 1], or None when either class is empty.

    Raises:
        ValueError: Lengths differ or a score is NaN.
    """
    if len(scores) != len(labels):
        raise ValueError(f"auroc: {len(scores)} scores but {len(labels)} labels")
    if any(math.isnan(s) for s in scores):
        raise ValueError("auroc: a score is NaN")
    num_pos = sum(1 for y in labels if y)
    num_neg = len(labels) - num_pos
    if num_pos == 0 or num_neg == 0:
        return None
    ordered = sorted(zip(scores, labels, strict=True), key=lambda pair: pair[0])
    rank_sum_pos = 0.0
    start = 0
    while start < len(ordered):
        end = start
        while end < len(ordered) and ordered[end][0] == ordered[start][0]:
            end += 1
        mean_rank = (start + 1 + end) / 2  # ranks start+1 .. end share their mean
        rank_sum_pos += mean_rank * sum(1 for _, y in ordered[start:end] if y)
        start = end
    return (rank_sum_pos - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One sampled solution (an end leaf) of one problem.

    Attributes:
        node_id: The end leaf.
        answer: Its extracted answer (None: it stated none).
        text: The whole solution text, as generated.
        correct: Verified correctness; None when it could not be told.
        reward_last: The reward model's score of its last step, in [0, 1]; None if unscored.
        reward_min: The minimum step score over its path, in [0, 1]; None unless every step
            is scored.
    """

    node_id: int
    answer: str | None
    text: str
    correct: bool | None
    reward_last: float | None
    reward_min: float | None


def samples_of(trace: SearchTrace, verify_fn: VerifyFn | None = None,
               reward_key: str = DEFAULT_REWARD_KEY) -> list[Sample]:
    """The sampled solutions of one search, with their correctness and reward scores.

    Args:
        trace: The problem's search trace.
        verify_fn: ``(problem_id, text) -> correct`` for answered leaves without a stored
            verifier score; None: those stay unknown.
        reward_key: The node score key of the reward model.
    """
    tree = trace.to_tree()
    out = []
    for leaf in end_leaves(tree):
        node = tree[leaf]
        text = tree.path_text(leaf)
        stored = node.scores.get("verifier")
        if stored is not None:
            correct: bool | None = stored >= 0.5
        elif node.answer is None:
            correct = False
        else:
            correct = verify_fn(trace.problem_id, text) if verify_fn is not None else None
        steps = [tree[i].scores.get(reward_key) for i in tree.path(leaf)[1:]]
        reward_min = min(steps) if steps and all(s is not None for s in steps) else None
        out.append(Sample(leaf, node.answer, text, correct, node.scores.get(reward_key), reward_min))
    return out


def correct_counts(samples: Sequence[Sample]) -> tuple[int, int]:
    """``(n, c)``: verified samples and correct ones among them (unknown ones left out)."""
    known = [s.correct for s in samples if s.correct is not None]
    return len(known), sum(known)


@dataclasses.dataclass(frozen=True)
class Diversity:
    """Distinct solutions per problem, averaged over problems with at least one sample.

    Attributes:
        problems: Problems averaged over.
        samples: Mean samples (end leaves) per problem.
        distinct_answers: Mean number of distinct final answers (stripped; no answer not counted).
        distinct_texts: Mean number of distinct solution texts.
    """

    problems: int
    samples: float | None
    distinct_answers: float | None
    distinct_texts: float | None


def diversity(per_problem: Iterable[Sequence[Sample]]) -> Diversity:
    """Distinct final answers and distinct solution texts among each problem's samples."""
    rows = [(len(s), len({x.answer.strip() for x in s if x.answer is not None}), len({x.text for x in s}))
            for s in per_problem if s]
    if not rows:
        return Diversity(0, None, None, None)
    return Diversity(len(rows), *(sum(r[i] for r in rows) / len(rows) for i in range(3)))


def reward_auroc(samples: Iterable[Sample], how: str = "last") -> tuple[float | None, int, int]:
    """PRM discrimination: AUROC of the path reward of answered, verified, scored samples
    against their correctness.

    Args:
        samples: Samples of any number of problems (pooled).
        how: ``last`` (the last step's score) or ``min`` (minimum over the path's steps).

    Returns:
        AUROC (None when one class is empty), the number of correct and incorrect samples used.
    """
    pairs = [((s.reward_last if how == "last" else s.reward_min), s.correct) for s in samples
             if s.answer is not None and s.correct is not None]
    pairs = [(score, bool(y)) for score, y in pairs if score is not None]
    num_pos = sum(1 for _, y in pairs if y)
    return auroc([p[0] for p in pairs], [p[1] for p in pairs]), num_pos, len(pairs) - num_pos


def selection_accuracy(outcomes: Iterable[tuple[int, bool]]) -> tuple[float | None, int]:
    """How often the search picks a correct answer when it sampled one (B-STaR's exploitation).

    Args:
        outcomes: ``(correct samples, chosen answer correct)`` per problem.

    Returns:
        The share of problems with at least one correct sample whose chosen answer is
        correct (None when there is none), and how many such problems there are.
    """
    chosen = [ok for c, ok in outcomes if c > 0]
    return (sum(chosen) / len(chosen) if chosen else None), len(chosen)


@dataclasses.dataclass(frozen=True)
class LabelBalance:
    """What one label generator produced in one label run.

    Attributes:
        generator: The generator's name.
        labels: Step labels written.
        problems: Problems with at least one label.
        hard_labels: Labels with a hard target (``label`` not None).
        share_true: Share of hard targets that are True, in [0, 1]; None without any.
        mean_value: Mean soft target (``value``) over labels that have one; None without any.
    """

    generator: str
    labels: int
    problems: int
    hard_labels: int
    share_true: float | None
    mean_value: float | None


def label_balance(labels: Iterable[StepLabel]) -> dict[str, LabelBalance]:
    """Per generator (sorted by name): label count, share of True hard labels, mean soft value."""
    groups: dict[str, list[StepLabel]] = defaultdict(list)
    for x in labels:
        groups[x.generator].append(x)
    out = {}
    for name in sorted(groups):
        group = groups[name]
        hard = [x.label for x in group if x.label is not None]
        soft = [x.value for x in group if x.value is not None]
        out[name] = LabelBalance(
            generator=name, labels=len(group), problems=len({x.problem_id for x in group}),
            hard_labels=len(hard), share_true=sum(hard) / len(hard) if hard else None,
            mean_value=sum(soft) / len(soft) if soft else None)
    return out


@dataclasses.dataclass(frozen=True)
class StepCounts:
    """How many steps the sampled solutions of a run have (are labels about steps at all?).

    Attributes:
        solutions: End leaves counted (every problem's samples pooled).
        mean_steps: Mean number of steps per solution; None without solutions.
        one_step_share: Share of solutions that are a single step, in [0, 1]; None without any.
        histogram: Number of steps -> solutions with that many.
    """

    solutions: int
    mean_steps: float | None
    one_step_share: float | None
    histogram: dict[int, int]


def solution_steps(trace: SearchTrace) -> list[int]:
    """Per end leaf of the search (``search.aggregate.end_leaves``), the number of its steps:
    the non-blank texts of its content path (a step that is only whitespace is not a step)."""
    tree = trace.to_tree()
    return [sum(1 for t in tree.path_texts(leaf) if t.strip()) for leaf in end_leaves(tree)]


def step_counts(traces: Iterable[SearchTrace]) -> StepCounts:
    """Steps per solution over every end leaf of ``traces`` (see :func:`solution_steps`)."""
    counts = [n for trace in traces for n in solution_steps(trace)]
    if not counts:
        return StepCounts(0, None, None, {})
    histogram: dict[int, int] = defaultdict(int)
    for n in counts:
        histogram[n] += 1
    return StepCounts(len(counts), sum(counts) / len(counts), sum(1 for n in counts if n == 1) / len(counts),
                      dict(sorted(histogram.items())))
