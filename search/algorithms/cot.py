"""Chain of thought: greedy decoding (temperature 0), one step at a time, until terminal."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from search.algorithms.common import ConfigBase, finish_beam
from search.beam import beam_search
from search.context import SearchContext
from search.trace import SearchResult


class CotConfig(ConfigBase):
    """Greedy chain of thought (the cheapest baseline)."""

    algorithm: Literal["cot"] = Field("cot", description="Discriminator.")


async def cot_search(ctx: SearchContext, config: CotConfig) -> SearchResult:
    """One greedy chain: a beam of width 1 with one child per step at temperature 0."""
    outcome = await beam_search(ctx, 0, width=1, num_children=1, temperature=0.0)
    return finish_beam(ctx, config.algorithm, outcome, "first")
