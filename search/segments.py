"""Pure pieces of segment-tree sampling (TreePO, spec 03 §3-§5): termination checks, the
branching budget, its distribution over active paths, and the fallback's choices.

Plain functions of counts, texts and log-probabilities (no I/O, no tree walking): the level
loop in ``search.algorithms.treepo`` fixes them from its config. Random choices take a
``random.Random`` so a seeded search repeats.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Literal

TreeFinishReason = Literal[
    "finished",
    "finished_with_unclosed_answer",
    "early_stopped_by_eos",
    "finished_with_max_infer_steps",
    "finished_with_max_output_tokens",
    "early_stopped_by_repetition",
    "unfinished",
]
"""Why a trajectory ended (spec 03 §1). ``unfinished``: the problem's budget ran out first."""

PRIORITY: dict[str, int] = {
    "finished": 7,
    "finished_with_unclosed_answer": 6,
    "early_stopped_by_eos": 5,
    "finished_with_max_infer_steps": 4,
    "finished_with_max_output_tokens": 3,
    "early_stopped_by_repetition": 2,
    "unfinished": 1,
}
"""Finish-reason priorities 7..1 (spec 03 §1), used by the ``finished_first`` fallback."""

RepetitionPolicy = Literal["most_prioritized", "last", "off"]
BoxedEosPolicy = Literal["boxed_and_eos_first", "boxed_as_eos"]
BudgetPolicy = Literal["by_fixed_div", "by_random_div", "by_infer_step_token_budget"]
DivergencePolicy = Literal[
    "fixed_avg",
    "logprob_weighted_div", "inverse_logprob_weighted_div",
    "norm_logprob_weighted_div", "inverse_norm_logprob_weighted_div",
    "node_logprob_weighted_div", "inverse_node_logprob_weighted_div",
]
FallbackTrajPolicy = Literal["soft_boxed_and_eos", "finished_first", "finished_first_strict", "random_all", "longer_first"]
FallbackCutPolicy = Literal["random", "min_logprob_segment", "block", "inverse_block", "from_start"]

_BOX = "\\boxed{"


# -- termination (spec 03 §3) -------------------------------------------------------------


def is_repetitive(text: str, substring_chars: int = 32, min_count: int = 8) -> bool:
    """Whether some ``substring_chars``-character substring occurs at least ``min_count``
    times in ``text`` (every start position counts; the release's repetition test)."""
    if len(text) < substring_chars * min_count:
        return False
    counts = Counter(text[i : i + substring_chars] for i in range(len(text) - substring_chars + 1))
    return max(counts.values()) >= min_count


def box_state(text: str) -> Literal["closed", "open", "none"]:
    """``closed`` when the last ``\\boxed{`` of ``text`` is closed, ``open`` when it is not,
    ``none`` without a box."""
    start = text.rfind(_BOX)
    if start == -1:
        return "none"
    depth = 0
    for ch in text[start + len(_BOX) - 1 :]:
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return "closed"
    return "open"


def classify_segment(
    *,
    eos: bool,
    answered: bool,
    box: Literal["closed", "open", "none"],
    repetitive: bool,
    response_tokens: int,
    depth: int,
    max_response_tokens: int,
    max_depth: int,
    repetition_policy: RepetitionPolicy = "most_prioritized",
    boxed_eos_policy: BoxedEosPolicy = "boxed_and_eos_first",
) -> TreeFinishReason | None:
    """The checks of spec 03 §3, in its order, after a path's newest segment; None = go deeper.

    1. repetition first (``most_prioritized``); 2. an answer with EOS finishes
    (``boxed_and_eos_first``; ``boxed_as_eos``: a closed box alone finishes); 3. EOS with an
    unclosed box -> ``finished_with_unclosed_answer``, EOS without an answer ->
    ``early_stopped_by_eos``; 4. the response limit; 5. the depth limit; 6. repetition
    (policy ``last``).

    Args:
        eos: The segment ended with EOS.
        answered: The path text has a final answer (the task's extract_fn found one).
        box: ``box_state`` of the path text.
        repetitive: ``is_repetitive`` on the path's recent text.
        response_tokens: Tokens of the whole response so far.
        depth: Segments in the path (>= 1).
    """
    if repetitive and repetition_policy == "most_prioritized":
        return "early_stopped_by_repetition"
    if eos and answered and box != "open":
        return "finished"
    if boxed_eos_policy == "boxed_as_eos" and box == "closed":
        return "finished"
    if eos:
        return "finished_with_unclosed_answer" if box == "open" else "early_stopped_by_eos"
    if response_tokens >= max_response_tokens:
        return "finished_with_max_output_tokens"
    if depth >= max_depth:
        return "finished_with_max_infer_steps"
    if repetitive and repetition_policy == "last":
        return "early_stopped_by_repetition"
    return None


# -- branching budget (spec 03 §4) ----------------------------------------------------------


def branch_total(
    policy: BudgetPolicy,
    *,
    width: int,
    finished: int,
    finished_now: int,
    active: int,
    divergence: int,
    segment_tokens: int,
    rng: random.Random,
    random_div: tuple[int, int] = (1, 3),
    step_token_budget: int | None = None,
) -> int:
    """How many paths the next level samples for one prompt (spec 03 §4).

    ``by_fixed_div``: min(W - F, f·D + D·A), at least A (finished paths donate their branching
    to the survivors); ``by_random_div``: the same with D uniform in ``random_div`` each level;
    ``by_infer_step_token_budget``: min(W - F, step_token_budget / L), at least A.

    Args:
        width: W, the prompt's trajectory budget.
        finished: F, trajectories finished so far (this level's included).
        finished_now: f, trajectories finished at this level.
        active: A, paths that go deeper.
        divergence: D.
        segment_tokens: L.
        step_token_budget: Tokens one prompt may spend per level (token-budget policy).
    """
    remaining = max(width - finished, 0)
    match policy:
        case "by_fixed_div":
            total = min(remaining, finished_now * divergence + divergence * active)
        case "by_random_div":
            d = rng.randint(*random_div)
            total = min(remaining, finished_now * d + d * active)
        case "by_infer_step_token_budget":
            if step_token_budget is None:
                raise ValueError("by_infer_step_token_budget needs step_token_budget")
            total = min(remaining, step_token_budget // max(segment_tokens, 1))
    return max(total, active)


def token_budget_width(*, width: int, min_width: int, response_token_budget: int, generated: int,
                       finished: int, active_lengths: Sequence[int], segment_tokens: int) -> int:
    """W under ``total_budget_policy=by_response_token`` (spec 03 §4): the finished and active
    trajectories plus how many more of the active ones' mean length fit in what is left of
    ``response_token_budget``, clamped to [``min_width``, ``width``]."""
    mean = sum(active_lengths) / len(active_lengths) if active_lengths else segment_tokens
    more = max(response_token_budget - generated, 0) // max(int(mean), 1)
    return max(min_width, min(width, finished + len(active_lengths) + more))


def path_scores(policy: DivergencePolicy, cum_logprob: Sequence[float], mean_logprob: Sequence[float],
                last_logprob: Sequence[float]) -> list[float] | None:
    """The probability-driven policies' scores s (spec 03 §4); None for ``fixed_avg``.

    s = -(x - min x) (more branches to LOW-probability paths), or +(x - min x) for the
    ``inverse_`` policies, where x is the path's summed token logprob, its mean token logprob
    (``norm_``) or its last segment's mean (``node_``).
    """
    if policy == "fixed_avg":
        return None
    x = mean_logprob if "norm_" in policy else last_logprob if "node_" in policy else cum_logprob
    low = min(x)
    sign = 1.0 if policy.startswith("inverse_") else -1.0
    return [sign * (v - low) for v in x]


def distribute(total: int, num_paths: int, scores: Sequence[float] | None = None, temperature: float = 1.0) -> list[int]:
    """Splits ``total`` branches over ``num_paths`` active paths, each >= 1 (spec 03 §4).

    Without scores (``fixed_avg``): ⌊total/A⌋ each, the last also gets the remainder. With
    scores: weights softmax(s / temperature); every path gets 1 and the other total - A go by
    largest remainder of weight x (total - A) (ties: the earlier path).
    """
    if num_paths <= 0:
        return []
    total = max(total, num_paths)
    if scores is None:
        base = total // num_paths
        return [base] * (num_paths - 1) + [base + total - base * num_paths]
    if len(scores) != num_paths:
        raise ValueError(f"invalid scores: {len(scores)} for {num_paths} paths")
    top = max(s / temperature for s in scores)
    weights = [math.exp(s / temperature - top) for s in scores]
    norm = sum(weights)
    extra = total - num_paths
    quotas = [w / norm * extra for w in weights]
    counts = [1 + int(q) for q in quotas]
    order = sorted(range(num_paths), key=lambda i: (-(quotas[i] - int(quotas[i])), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


# -- fallback (spec 03 §5) --------------------------------------------------------------------


def fallback_order(policy: FallbackTrajPolicy, reasons: Sequence[str], lengths: Sequence[int],
                   rng: random.Random) -> list[int]:
    """Indices of the finished trajectories a fallback may restart from, in the order to use.

    ``soft_boxed_and_eos`` (train default): answered or EOS-ended ones, shuffled;
    ``finished_first``: all, by priority + Gumbel noise; ``finished_first_strict``: by priority
    (ties shuffled); ``random_all``: all, shuffled; ``longer_first``: by log length + Gumbel.
    Empty: restart from the bare prompt.
    """
    idx = list(range(len(reasons)))
    rng.shuffle(idx)

    def gumbel() -> float:
        return -math.log(-math.log(rng.random() or 1e-12))

    match policy:
        case "soft_boxed_and_eos":
            ok = {"finished", "finished_with_unclosed_answer", "early_stopped_by_eos"}
            return [i for i in idx if reasons[i] in ok]
        case "finished_first":
            return sorted(idx, key=lambda i: -(PRIORITY.get(reasons[i], 0) + gumbel()))
        case "finished_first_strict":
            return sorted(idx, key=lambda i: -PRIORITY.get(reasons[i], 0))
        case "random_all":
            return idx
        case "longer_first":
            return sorted(idx, key=lambda i: -(math.log(max(lengths[i], 1)) + gumbel()))


def cut_segments(policy: FallbackCutPolicy, segment_logprobs: Sequence[float], rng: random.Random, *,
                 max_depth: int, max_fallback_window: int | None = None) -> int:
    """How many of a trajectory's segments a fallback keeps (0 = restart from the prompt).

    ``random`` (train default): b uniform in [1, n] (at most ``max_fallback_window``), keep
    n - b; ``min_logprob_segment``: regenerate from the segment with the lowest mean token
    logprob (the release's ``min_logprob_token`` at segment granularity: nodes are whole
    segments); ``block``: regenerate from a segment drawn ∝ softmax(-mean logprob) (uncertain
    segments); ``inverse_block``: ∝ softmax(+mean logprob); ``from_start``: keep none. The
    kept prefix is at most ``max_depth - 1`` segments, so the new branch has room.

    Args:
        segment_logprobs: Mean token logprob of each segment, root first (n = its length).
    """
    n = len(segment_logprobs)
    if n == 0:
        return 0
    match policy:
        case "random":
            b = rng.randint(1, min(n, max_fallback_window) if max_fallback_window else n)
            keep = n - b
        case "min_logprob_segment":
            keep = min(range(n), key=lambda i: segment_logprobs[i])
        case "block" | "inverse_block":
            sign = -1.0 if policy == "block" else 1.0
            top = max(sign * v for v in segment_logprobs)
            weights = [math.exp(sign * v - top) for v in segment_logprobs]
            keep = rng.choices(range(n), weights=weights)[0]
        case "from_start":
            keep = 0
    return max(0, min(keep, max_depth - 1))
