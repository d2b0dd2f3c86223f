"""Chain of thought: one greedy solution (temperature 0), sampled in one request and cut into steps."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from search.algorithms.common import ConfigBase, finish_beam, sample_chains
from search.context import SearchContext
from search.trace import SearchResult


class CotConfig(ConfigBase):
    """Greedy chain of thought (the cheapest baseline)."""

    algorithm: Literal["cot"] = Field("cot", description="Discriminator.")


async def cot_search(ctx: SearchContext, config: CotConfig) -> SearchResult:
    """One greedy chain, sampled whole (see ``SearchContext.sample_solutions``)."""
    outcome = await sample_chains(ctx, 1, 0.0)
    return finish_beam(ctx, config.algorithm, outcome, "first")
