"""Every algorithm stops cleanly on its budget and returns the best it has."""

import time

import pytest

from search.algorithms import (
    BestFirstConfig,
    BestOfNConfig,
    CotConfig,
    DvtsConfig,
    MctsConfig,
    SelfConsistencyConfig,
    StepBeamConfig,
    run_search,
)
from search.context import Budget
from search.steps import StepFormat
from search_fakes import Cand, ScriptedRewardModel, make_ctx


def endless(steps):
    """Long chains: the answer only comes at the maximum depth (20)."""
    d = len(steps)
    return [Cand(f"s{d}{k} ANSWER:{k}\n\n", -0.1 * (i + 1)) for i, k in enumerate("abcd")]


CONFIGS = [
    CotConfig(),
    SelfConsistencyConfig(num_samples=4),
    BestOfNConfig(num_samples=4),
    StepBeamConfig(beam_width=2, num_children=2),
    DvtsConfig(num_samples=4, subtree_width=2),
    BestFirstConfig(expansion_width=2, max_expansions=500),
    MctsConfig(num_simulations=500, num_children=2),
]
WIDEST_WAVE = 4  # most requests any config issues at once


def ctx_for(**kwargs):
    return make_ctx(endless, reward_model=ScriptedRewardModel(), steps=StepFormat(max_depth=20), **kwargs)


FLAT = CONFIGS[:3]  # whole solutions in one request


@pytest.mark.parametrize("config", CONFIGS[3:], ids=lambda c: c.algorithm)
async def test_call_budget_stops_search(config):
    unlimited = ctx_for()
    await run_search(unlimited, config)
    ctx = ctx_for(budget=Budget(max_calls=3))
    result = await run_search(ctx, config)
    sent = len(ctx.policy.requests)
    assert len(unlimited.policy.requests) > 6
    assert 1 <= sent <= 3 - 1 + WIDEST_WAVE  # checked before each call; a wave in flight may finish
    assert result.extra["budget_exhausted"] and result.path  # best so far: an unfinished path
    assert result.path == ctx.tree.path(result.path[-1])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.algorithm)
async def test_token_budget_stops_search(config):
    ctx = ctx_for(budget=Budget(max_generated_tokens=50))
    result = await run_search(ctx, config)
    assert result.extra["budget_exhausted"]
    assert ctx.usage.generated_tokens < 50 + WIDEST_WAVE * 2 * 16


@pytest.mark.parametrize("config", FLAT, ids=lambda c: c.algorithm)
async def test_flat_methods_ask_for_their_share_of_the_token_budget(config):
    ctx = ctx_for(budget=Budget(max_generated_tokens=50))
    result = await run_search(ctx, config)
    [(_, sampling)] = ctx.policy.requests
    assert sampling.max_tokens == -(-50 // sampling.n)  # an even share of the budget per sample
    assert result.extra["budget_exhausted"] and result.path


async def test_wall_budget_stops_search():
    ctx = ctx_for(budget=Budget(max_wall_seconds=0.05), policy_kwargs={"latency": 0.01})
    start = time.perf_counter()
    result = await run_search(ctx, MctsConfig(num_simulations=10_000, num_children=2))
    assert time.perf_counter() - start < 1.0
    assert result.extra["budget_exhausted"] and result.extra["simulations"] < 100
