"""TreePO segment-tree sampling (spec 03 §1-§5, §8): many trajectories per prompt as a tree of
fixed-length segments, so siblings share their prefix and failing branches stop early.

A node is one segment: a step of ``ctx.steps`` (``fixed_tokens`` segments of L tokens; a
delimiter step format works too, spec 03 §9). One level sends one segment request for every
active path of the prompt at once; the engine batches them with every other problem's
requests, since each problem is its own coroutine against the run's one ``BoundedPolicy``
(``search.scheduler``). That is the release's level-synchronous batch without a barrier
across prompts: a prompt's next level starts when its own segments are back, not when the
slowest prompt's are. Prompts are the paths' token ids, so siblings hit the prefix cache.

Each new segment is classified in the spec's order (``search.segments.classify_segment``);
the prompt's branching budget (``branch_total``) is then spread over its surviving paths
(``distribute``), and a prompt left with no active path and fewer than W trajectories falls
back: it restarts from a cut prefix of finished trajectories (``fallback_order``,
``cut_segments``). The number of trajectories varies (<= W).

As a solve-mode search it answers by a majority vote over the trajectories that ended by
themselves (EOS or the depth limit). ``trajectories(result)`` lists every trajectory for
training (``training.rl.advantages.tree_advantages`` takes their ``path``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sys
from collections import Counter
from typing import Literal

from pydantic import Field, model_validator

from search.aggregate import vote_path
from search.algorithms.common import ConfigBase
from search.context import SearchContext
from search.segments import (
    BoxedEosPolicy,
    BudgetPolicy,
    DivergencePolicy,
    FallbackCutPolicy,
    FallbackTrajPolicy,
    RepetitionPolicy,
    TreeFinishReason,
    box_state,
    branch_total,
    classify_segment,
    cut_segments,
    distribute,
    fallback_order,
    is_repetitive,
    path_scores,
    token_budget_width,
)
from search.trace import SearchResult, SearchTrace
from search.tree import Tree

VOTED: frozenset[str] = frozenset({"finished", "finished_with_unclosed_answer", "finished_with_max_infer_steps"})
"""Finish reasons whose answers are voted (paths that ended by themselves, as self-consistency's)."""


class TreePOConfig(ConfigBase):
    """TreePO sampling. Defaults are the release's train script (spec 03 §7) at CPU size.

    First-step divergence: the root gets ``first_divergence`` paths (default D), or a number
    uniform in [that, ``random_first_div_max``] when set. The released code names
    ``random_first_div_min/max`` but overwrites them with -1 (spec 03 §4, code caveat), so what
    it effectively does is D (= 2): the default here.
    """

    algorithm: Literal["treepo"] = Field("treepo", description="Discriminator.")
    max_width: int = Field(8, ge=1, description="W: trajectories per prompt at most (the release: rollout.n = 16).")
    divergence: int = Field(2, ge=1, description="D: branches per active path and per finished path's donation.")
    budget_policy: BudgetPolicy = Field("by_fixed_div", description="How many paths the next level samples (spec 03 §4).")
    random_div_min: int = Field(1, ge=1, description="by_random_div: smallest D drawn each level.")
    random_div_max: int = Field(3, ge=1, description="by_random_div: largest D drawn each level.")
    step_token_budget: int | None = Field(
        None, ge=1, description="by_infer_step_token_budget: tokens one prompt may sample per level (paths = this / L).")
    width_policy: Literal["fixed", "by_response_token"] = Field(
        "fixed", description="fixed: W = max_width; by_response_token: W from what response_token_budget has left.")
    response_token_budget: int | None = Field(
        None, ge=1, description="by_response_token: generated tokens a prompt's whole tree may take.")
    min_width: int = Field(1, ge=1, description="by_response_token: the smallest W.")
    divergence_policy: DivergencePolicy = Field(
        "fixed_avg", description="How the branches are spread over active paths: evenly, or by path log-probability.")
    div_temperature: float = Field(1.0, gt=0.0, description="T_div of the probability-driven policies (softmax(s / T)).")
    first_divergence: int | None = Field(None, ge=1, description="Paths from the prompt; None = divergence (the release's effective value).")
    random_first_div_max: int | None = Field(None, ge=1, description="Draw the first divergence uniformly up to this.")
    max_response_tokens: int | None = Field(
        None, ge=1, description="Response limit in tokens (the release: 7 x 1024); None = none but the depth limit.")
    repetition_policy: RepetitionPolicy = Field(
        "most_prioritized", description="Repetition checked first (most_prioritized), after the other checks (last), or never.")
    repetition_window_tokens: int = Field(
        512, ge=1, description="The repetition test reads the path's latest segments covering this many tokens "
        "(the release: one 512-token segment).")
    repetition_substring_chars: int = Field(32, ge=1, description="Repetition: a substring of this many characters ...")
    repetition_min_count: int = Field(8, ge=2, description="... occurring at least this many times.")
    boxed_eos_policy: BoxedEosPolicy = Field(
        "boxed_and_eos_first", description="An answer finishes with EOS (boxed_and_eos_first) or a closed \\boxed{} alone does.")
    fallback_traj_policy: FallbackTrajPolicy = Field("soft_boxed_and_eos", description="Which finished trajectories a fallback restarts from.")
    fallback_policy: FallbackCutPolicy = Field("random", description="Where a fallback cuts its source trajectory.")
    max_fallback_window: int | None = Field(None, ge=1, description="random cut: at most this many segments are cut off.")
    clone_requests: bool = Field(
        False, description="False: a path's k branches are one request with n = k (one prefill); True: k requests "
        "with n = 1, as the release clones samples (siblings then share the prefix through the prefix cache).")
    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature; None = the context default (release: 1.0).")
    align_block: int | None = Field(
        None, ge=1, description="The server's KV block size B (L a multiple of it): the first segment is cut "
        "(P - 1) mod B tokens short (P: prompt tokens) and a last-level segment gets them back, so every "
        "later segment request ends one token past a block boundary and its n sequences recompute one "
        "prompt token, not the partial last block (vLLM caches whole blocks and always recomputes the "
        "last prompt token). The trajectory cap stays max_depth x L. None: plain L-token segments.")

    @property
    def needs_logprobs(self) -> bool:
        """Whether a policy here reads token logprobs (probability-driven divergence, the
        logprob-driven fallback cuts); the release's defaults read none, so segments are
        requested without them."""
        return self.divergence_policy != "fixed_avg" or self.fallback_policy in (
            "min_logprob_segment", "block", "inverse_block")

    @model_validator(mode="after")
    def _consistent(self) -> TreePOConfig:
        if self.random_div_min > self.random_div_max:
            raise ValueError(f"random_div_min={self.random_div_min} is above random_div_max={self.random_div_max}")
        if self.budget_policy == "by_infer_step_token_budget" and self.step_token_budget is None:
            raise ValueError("budget_policy by_infer_step_token_budget needs step_token_budget")
        if self.width_policy == "by_response_token" and self.response_token_budget is None:
            raise ValueError("width_policy by_response_token needs response_token_budget")
        if self.min_width > self.max_width:
            raise ValueError(f"min_width={self.min_width} is above max_width={self.max_width}")
        return self


def segment_limits(prompt_tokens: int, segment_tokens: int, max_depth: int, align_block: int | None) -> dict[int, int]:
    """Token limits of the segments that differ from L, by depth (1 = the first segment).

    With ``align_block`` B (L % B == 0, else nothing changes) the first segment is
    (P - 1) mod B tokens short, so P + its length is 1 mod B and stays so after every further
    L-token segment; the last level (``max_depth``) gets those tokens back."""
    if align_block is None or segment_tokens % align_block:
        return {}
    short = (prompt_tokens - 1) % align_block
    if short == 0 or max_depth < 2:
        return {}
    return {1: segment_tokens - short, max_depth: segment_tokens + short}


@dataclasses.dataclass(frozen=True)
class TreeTrajectory:
    """One root-to-leaf trajectory of a TreePO tree.

    Attributes:
        path: Segment node ids, root first (the prompt, node 0, excluded); ``path[:d]`` names
            the depth-d ancestor, so trajectories sharing it form the spec's subgroup G_d.
        token_ids: The response tokens (the segments' token ids, concatenated; prompt excluded).
        text: The response text.
        finish_reason: Why it ended (spec 03 §1).
        answer: The answer the task's extract_fn found in ``text`` (no gold involved), or None.
    """

    path: tuple[int, ...]
    token_ids: list[int]
    text: str
    finish_reason: TreeFinishReason
    answer: str | None


def trajectories(source: SearchResult | SearchTrace) -> list[TreeTrajectory]:
    """The trajectories of a TreePO search, from its result or its saved trace, in the order
    they ended."""
    if isinstance(source, SearchResult):
        tree, extra = source.tree, source.extra
    else:
        tree, extra = source.to_tree(), source.extra
    if "trajectories" not in extra:
        raise ValueError(f"not a TreePO result: algorithm {source.algorithm!r} records no trajectories")
    out = []
    for t in extra["trajectories"]:
        ids = tree.path(int(t["leaf"]))[1:]
        out.append(TreeTrajectory(
            path=tuple(ids),
            token_ids=[tok for i in ids for tok in tree.nodes[i].token_ids],
            text="".join(tree.nodes[i].text for i in ids),
            finish_reason=t["finish_reason"],
            answer=t["answer"],
        ))
    return out


@dataclasses.dataclass
class _Prompt:
    """One prompt's sampling state."""

    ended: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (leaf, reason)
    lost: int = 0  # samples whose request failed (they count against W, so the loop ends)
    fallbacks: int = 0
    finished_at_first_fallback: int | None = None
    levels: int = 0

    @property
    def done(self) -> int:
        return len(self.ended) + self.lost


async def treepo_search(ctx: SearchContext, config: TreePOConfig) -> SearchResult:
    """Samples the prompt's segment tree level by level and votes over its trajectories."""
    seed = ctx.sampling.seed
    rng = random.Random(f"{seed}:{ctx.problem.id}") if seed is not None else random.Random()
    tree, steps = ctx.tree, ctx.steps
    seg = steps.step_tokens
    max_response = config.max_response_tokens or sys.maxsize
    state = _Prompt()
    first = config.first_divergence or config.divergence
    if config.random_first_div_max is not None and config.random_first_div_max > first:
        first = rng.randint(first, config.random_first_div_max)
    frontier = [(0, min(first, _width(ctx, config, state, [])))]
    limits = segment_limits(len(tree.root_prefix), seg, steps.max_depth, config.align_block)
    active: list[int] = []
    while frontier and not ctx.exhausted():
        children = await _sample_level(ctx, config, frontier, limits)
        state.levels += 1
        active, finished_now = [], 0
        with ctx.bookkeeping():
            for (node_id, k), kids in zip(frontier, children):
                state.lost += k - len(kids) if tree.nodes[node_id].error is not None or kids else 0
                for c in kids:
                    reason = _classify(ctx, config, c, max_response)
                    if reason is None:
                        active.append(c)
                    else:
                        _end(ctx, c, reason, state)
                        finished_now += 1
            if ctx.exhausted():
                break
            width = _width(ctx, config, state, active)
            if active:
                total = branch_total(
                    config.budget_policy, width=width, finished=state.done, finished_now=finished_now,
                    active=len(active), divergence=config.divergence, segment_tokens=seg, rng=rng,
                    random_div=(config.random_div_min, config.random_div_max),
                    step_token_budget=config.step_token_budget,
                )
                counts = distribute(total, len(active), _scores(tree, config.divergence_policy, active),
                                    config.div_temperature)
                frontier = list(zip(active, counts))
            elif state.done < width:
                frontier = _fallback(ctx, config, state, width, rng)
            else:
                frontier = []
    for c in active:  # the budget ran out with these paths still going
        if tree.nodes[c].error is None:
            state.ended.append((c, "unfinished"))
    return _result(ctx, config, state)


async def _sample_level(ctx: SearchContext, config: TreePOConfig, frontier: list[tuple[int, int]],
                        limits: dict[int, int]) -> list[list[int]]:
    """One segment for every branch of the level: per frontier node, its new children
    (``limits``: the segment token limits that differ from L, by the new segment's depth)."""
    temp = config.temperature
    nodes = ctx.tree.nodes

    def cap(n: int) -> int | None:
        return limits.get(nodes[n].depth + 1)

    lp = config.needs_logprobs
    if not config.clone_requests:
        return list(await asyncio.gather(*(ctx.expand(n, k, temperature=temp, max_tokens=cap(n), logprobs=lp)
                                           for n, k in frontier)))
    flat = await asyncio.gather(*(ctx.expand(n, 1, temperature=temp, max_tokens=cap(n), logprobs=lp)
                                  for n, k in frontier for _ in range(k)))
    out, i = [], 0
    for _, k in frontier:
        out.append([c for kids in flat[i : i + k] for c in kids])
        i += k
    return out


def _classify(ctx: SearchContext, config: TreePOConfig, node_id: int, max_response: int) -> TreeFinishReason | None:
    tree = ctx.tree
    node = tree.nodes[node_id]
    ids = tree.path(node_id)[1:]
    text = tree.path_text(node_id)
    eos = node.finish_reason == "eos"
    repetitive = config.repetition_policy != "off" and is_repetitive(
        _recent_text(tree, ids, config.repetition_window_tokens), config.repetition_substring_chars,
        config.repetition_min_count)
    return classify_segment(
        eos=eos,
        answered=eos and ctx.extract_fn(text) is not None,
        box=box_state(text),
        repetitive=repetitive,
        response_tokens=sum(len(tree.nodes[i].token_ids) for i in ids),
        depth=node.depth,
        max_response_tokens=max_response,
        max_depth=ctx.steps.max_depth,
        repetition_policy=config.repetition_policy,
        boxed_eos_policy=config.boxed_eos_policy,
    )


def _recent_text(tree: Tree, ids: list[int], window_tokens: int) -> str:
    """The text of the path's latest segments that together hold >= ``window_tokens`` tokens."""
    parts, tokens = [], 0
    for i in reversed(ids):
        parts.append(tree.nodes[i].text)
        tokens += len(tree.nodes[i].token_ids)
        if tokens >= window_tokens:
            break
    return "".join(reversed(parts))


def _end(ctx: SearchContext, node_id: int, reason: str, state: _Prompt) -> None:
    """Closes a path: a leaf the search will not extend, with its answer."""
    node = ctx.tree.nodes[node_id]
    if not node.terminal:
        node.end = True
        node.answer = ctx.extract_fn(ctx.tree.path_text(node_id))
    state.ended.append((node_id, reason))


def _width(ctx: SearchContext, config: TreePOConfig, state: _Prompt, active: list[int]) -> int:
    if config.width_policy == "fixed":
        return config.max_width
    assert config.response_token_budget is not None
    tree = ctx.tree
    return token_budget_width(
        width=config.max_width, min_width=config.min_width, response_token_budget=config.response_token_budget,
        generated=ctx.usage.generated_tokens, finished=state.done,
        active_lengths=[len(tree.path_token_ids(a)) - len(tree.root_prefix) for a in active],
        segment_tokens=ctx.steps.step_tokens,
    )


def _scores(tree: Tree, policy: DivergencePolicy, active: list[int]) -> list[float] | None:
    if policy == "fixed_avg":
        return None
    cum = [sum(tree.nodes[i].logprob_sum for i in tree.path(a)) for a in active]
    return path_scores(policy, cum, [tree.path_mean_logprob(a) for a in active],
                       [tree.nodes[a].logprob_mean for a in active])


def _fallback(ctx: SearchContext, config: TreePOConfig, state: _Prompt, width: int,
              rng: random.Random) -> list[tuple[int, int]]:
    """Refills the width budget from cut prefixes of finished trajectories (spec 03 §5)."""
    tree = ctx.tree
    if state.fallbacks == 0:
        state.finished_at_first_fallback = len(state.ended)
    state.fallbacks += 1
    leaves = [leaf for leaf, _ in state.ended]
    order = fallback_order(config.fallback_traj_policy, [r for _, r in state.ended],
                           [tree.nodes[leaf].depth for leaf in leaves], rng)
    remaining = width - state.done
    counts: Counter[int] = Counter()
    j = 0
    while remaining > 0:
        k = min(config.divergence, remaining)
        start = 0
        if order:
            path = tree.path(leaves[order[j % len(order)]])
            keep = cut_segments(config.fallback_policy, [tree.nodes[i].logprob_mean for i in path[1:]], rng,
                                max_depth=ctx.steps.max_depth, max_fallback_window=config.max_fallback_window)
            start = path[keep]
        counts[start] += k
        remaining -= k
        j += 1
    return list(counts.items())


def _result(ctx: SearchContext, config: TreePOConfig, state: _Prompt) -> SearchResult:
    tree = ctx.tree
    with ctx.bookkeeping():
        voted = [leaf for leaf, reason in state.ended if reason in VOTED and tree.nodes[leaf].answer is not None]
        node = vote_path(tree, voted, [1.0] * len(voted))
        records = [{"leaf": leaf, "finish_reason": reason, "answer": ctx.answer_of(leaf)} for leaf, reason in state.ended]
        reasons = Counter(reason for _, reason in state.ended)
    return ctx.result(
        config.algorithm, node, finished=voted, trajectories=records, num_trajectories=len(records),
        finish_reasons=dict(reasons), fallback_counter=state.fallbacks,
        n_finished_traj_at_first_fallback=state.finished_at_first_fallback, levels=state.levels,
        lost_samples=state.lost,
    )
