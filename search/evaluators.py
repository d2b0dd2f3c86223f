"""Value estimates of nodes, in [0, 1]: reward model, Monte-Carlo rollouts, or the prior.

Rollouts and terminal verification call ``ctx.oracle`` and therefore exist in LABEL
MODE ONLY; asking for them in solve mode (oracle None) raises ``ConfigError`` before any
compute is spent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from search.context import SearchContext
from search.protocols import ConfigError, EngineFault, PonderError

PrmAggregation = Literal["min", "last", "product"]
ValueSource = Literal["reward_model", "rollout", "prior"]
ValueFn = Callable[[Sequence[int]], Awaitable[list[float]]]
"""Node ids -> one value in [0, 1] per node."""


def aggregate_step_scores(scores: Sequence[float], how: PrmAggregation) -> float:
    """One path value from its per-step scores: ``min``, ``last`` or ``product`` (each in [0, 1])."""
    if not scores:
        return 0.0
    match how:
        case "min":
            return min(scores)
        case "last":
            return scores[-1]
        case "product":
            return math.prod(scores)


def prior_values(ctx: SearchContext, node_ids: Sequence[int]) -> list[float]:
    """exp(mean token logprob of the whole path) in (0, 1]: a no-model fallback value."""
    return [math.exp(ctx.tree.path_mean_logprob(i)) for i in node_ids]


async def reward_values(ctx: SearchContext, node_ids: Sequence[int], how: PrmAggregation) -> list[float]:
    """Reward-model path values; per-step scores are cached on nodes under ``ctx.reward_key``.

    Paths whose every step is already scored cost nothing; the rest go out in one call,
    asking only for the steps from each path's first unscored one.
    A failed call (``PonderError``) marks those nodes errored and gives them value 0.
    """
    if ctx.reward_model is None:
        raise ConfigError("reward_model", None, "this value source needs a reward model")
    tree, key = ctx.tree, ctx.reward_key
    paths = {i: tree.content_path(i) for i in node_ids}
    first = {i: next((k for k, j in enumerate(paths[i]) if key not in tree.nodes[j].scores), None)
             for i in node_ids}
    missing = [i for i in dict.fromkeys(node_ids) if first[i] is not None]
    if missing:
        try:
            scored = await ctx.score([tree.path_texts(i) for i in missing], [first[i] for i in missing])
        except EngineFault:
            raise
        except PonderError as exc:
            for i in missing:
                tree.nodes[i].error = f"{type(exc).__name__}: {exc}"
        else:
            with ctx.bookkeeping():
                for i, step_scores in zip(missing, scored.scores, strict=True):
                    for j, s in zip(paths[i][first[i]:], step_scores, strict=True):
                        tree.nodes[j].scores.setdefault(key, float(s))
    return [
        aggregate_step_scores([tree.nodes[j].scores[key] for j in paths[i]], how)
        if all(key in tree.nodes[j].scores for j in paths[i])
        else 0.0
        for i in node_ids
    ]


async def verified_value(ctx: SearchContext, node_id: int) -> float:
    """The oracle's reward (1 correct, else 0) for a node's path text; stored as ``verifier``."""
    if ctx.oracle is None:
        raise ConfigError("oracle", None, "verification against the gold answer exists only in label mode")
    verdict = await ctx.oracle(ctx.tree.path_text(node_id))
    ctx.tree.nodes[node_id].scores["verifier"] = verdict.reward
    return verdict.reward


async def rollout_value(ctx: SearchContext, node_id: int, num_rollouts: int) -> float:
    """Monte-Carlo estimate: share of ``num_rollouts`` policy completions the oracle accepts.

    Completions run to EOS in one request (no step stop), from the node's token-id
    prefix; their text is not added to the tree. Terminal nodes are verified directly.
    Stored on the node as ``rollout``.
    """
    if ctx.oracle is None:
        raise ConfigError("oracle", None, "rollouts to the verifier exist only in label mode")
    tree = ctx.tree
    node = tree.nodes[node_id]
    if node.terminal:
        return await verified_value(ctx, node_id)
    if ctx.exhausted():
        return prior_values(ctx, [node_id])[0]
    remaining = (ctx.steps.max_depth - node.depth) * ctx.steps.step_tokens
    prefix = tree.path_token_ids(node_id)
    sampling = dataclasses.replace(ctx.step_sampling(node_id, prefix, num_rollouts), stop=(), max_tokens=remaining)
    try:
        generation = await ctx.propose(prefix, sampling)
    except EngineFault:
        raise
    except PonderError as exc:
        node.error = f"{type(exc).__name__}: {exc}"
        return 0.0
    text = tree.path_text(node_id)
    verdicts = await asyncio.gather(*(ctx.oracle(text + p.text) for p in generation.proposals))
    value = sum(v.reward for v in verdicts) / len(verdicts) if verdicts else 0.0
    node.scores["rollout"] = value
    return value


def make_value_fn(
    ctx: SearchContext,
    source: ValueSource,
    *,
    aggregation: PrmAggregation = "last",
    num_rollouts: int = 4,
    verify_terminals: bool = False,
) -> ValueFn:
    """A value function for ``ctx``; checks up front that its models exist.

    Args:
        ctx: The search context.
        source: ``reward_model`` (PRM / self-eval / value model), ``rollout`` (label
            mode only) or ``prior`` (exp mean path logprob; needs no model).
        aggregation: How per-step reward-model scores become one value.
        num_rollouts: Completions per rollout estimate (``rollout`` only).
        verify_terminals: Value terminal nodes by the oracle (label mode only), as
            AlphaMath does with ground truth.

    Raises:
        ConfigError: A needed reward model or oracle is missing.
    """
    if source == "reward_model" and ctx.reward_model is None:
        raise ConfigError("reward_model", None, "value source 'reward_model' needs a reward model")
    if (source == "rollout" or verify_terminals) and ctx.oracle is None:
        raise ConfigError("oracle", None, "rollouts and terminal verification exist only in label mode")

    async def value_fn(node_ids: Sequence[int]) -> list[float]:
        tree = ctx.tree
        verified = {i for i in node_ids if verify_terminals and tree.nodes[i].terminal}
        rest = [i for i in node_ids if i not in verified]
        values = dict(zip(verified, await asyncio.gather(*(verified_value(ctx, i) for i in verified))))
        match source:
            case "reward_model":
                found = await reward_values(ctx, rest, aggregation)
            case "rollout":
                found = await asyncio.gather(*(rollout_value(ctx, i, num_rollouts) for i in rest))
            case "prior":
                found = prior_values(ctx, rest)
        values.update(zip(rest, found, strict=True))
        return [values[i] for i in node_ids]

    return value_fn
