"""Self-consistency: N sampled chains, majority vote over their final answers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from search.algorithms.common import ConfigBase, finish_beam, sample_chains
from search.context import SearchContext
from search.trace import SearchResult


class SelfConsistencyConfig(ConfigBase):
    """Majority vote over ``num_samples`` independent sampled chains."""

    algorithm: Literal["self_consistency"] = Field("self_consistency", description="Discriminator.")
    num_samples: int = Field(8, ge=1, description="Number of chains N.")
    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature; None = the context default.")


async def self_consistency_search(ctx: SearchContext, config: SelfConsistencyConfig) -> SearchResult:
    """Samples N chains and returns the most frequent answer (ties: first finished)."""
    outcome = await sample_chains(ctx, config.num_samples, config.temperature)
    return finish_beam(ctx, config.algorithm, outcome, "majority")
