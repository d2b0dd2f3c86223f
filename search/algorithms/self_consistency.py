"""Self-consistency: N sampled chains, majority vote over their final answers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from search.algorithms.common import ConfigBase, finish_beam
from search.beam import BeamOutcome, beam_search
from search.context import SearchContext
from search.trace import SearchResult


class SelfConsistencyConfig(ConfigBase):
    """Majority vote over ``num_samples`` independent sampled chains."""

    algorithm: Literal["self_consistency"] = Field("self_consistency", description="Discriminator.")
    num_samples: int = Field(8, ge=1, description="Number of chains N.")
    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature; None = the context default.")


async def sample_chains(ctx: SearchContext, num_samples: int, temperature: float | None) -> BeamOutcome:
    """``num_samples`` chains: the root's first steps in one request (n = N), then each
    chain continues alone; nothing is pruned."""
    return await beam_search(
        ctx, 0, width=num_samples, num_children=1, root_children=num_samples, temperature=temperature
    )


async def self_consistency_search(ctx: SearchContext, config: SelfConsistencyConfig) -> SearchResult:
    """Samples N chains and returns the most frequent answer (ties: first finished)."""
    outcome = await sample_chains(ctx, config.num_samples, config.temperature)
    return finish_beam(ctx, config.algorithm, outcome, "majority")
