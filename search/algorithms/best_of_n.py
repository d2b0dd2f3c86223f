"""Best-of-N: N sampled chains scored by the reward model (ORM / PRM)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from search.algorithms.common import ConfigBase, Need, finish_beam, sample_chains
from search.context import SearchContext
from search.evaluators import PrmAggregation, make_value_fn
from search.trace import SearchResult


class BestOfNConfig(ConfigBase):
    """Sample N chains, score each finished chain with the reward model, pick one."""

    algorithm: Literal["best_of_n"] = Field("best_of_n", description="Discriminator.")
    num_samples: int = Field(8, ge=1, description="Number of chains N.")
    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature; None = the context default.")
    aggregation: PrmAggregation = Field(
        "last", description="Per-step scores -> chain score: min, last (ORM-like) or product."
    )
    answer_by: Literal["best", "vote"] = Field(
        "best", description="best = highest chain score; vote = PRM-weighted vote over answers."
    )

    def needs(self) -> tuple[Need, ...]:
        return (Need("reward_model", "algorithm", "algorithm: self_consistency (a majority vote over the same "
                     "chains needs no reward model)"),)


async def best_of_n_search(ctx: SearchContext, config: BestOfNConfig) -> SearchResult:
    """Best-of-N; raises ``ConfigError`` up front when no reward model is configured."""
    value_fn = make_value_fn(ctx, "reward_model", aggregation=config.aggregation)
    outcome = await sample_chains(ctx, config.num_samples, config.temperature)
    if outcome.finished:
        outcome.scores.update(zip(outcome.finished, await value_fn(outcome.finished), strict=True))
    return finish_beam(ctx, config.algorithm, outcome, config.answer_by)
