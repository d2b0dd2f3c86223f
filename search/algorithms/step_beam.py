"""Step-level beam search: AlphaMath SBS (spec 05 §5) and a search-and-learn variant."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from search.algorithms.common import ConfigBase, Need, ScoreSource, finish_beam, score_fn_for, score_need
from search.beam import beam_search
from search.context import SearchContext
from search.evaluators import PrmAggregation
from search.trace import SearchResult


class StepBeamConfig(ConfigBase):
    """Step beam search.

    ``alphamath``: the root gets B1·B2 children, every later beam node B2; the top B1 by
    score are kept and the beam narrows by one for each path that finishes or dies.
    ``search_and_learn``: same expansion, but the width stays B1 and the search stops once
    B1·B2 paths finished (HF search-and-learn beam search, N = B1·B2, M = B2).
    """

    algorithm: Literal["step_beam"] = Field("step_beam", description="Discriminator.")
    beam_width: int = Field(3, ge=1, description="B1: paths kept per step (AlphaMath: 1, 2, 3 or 5).")
    num_children: int = Field(5, ge=1, description="B2: steps sampled per beam node (AlphaMath: 5).")
    variant: Literal["alphamath", "search_and_learn"] = Field(
        "alphamath", description="Whether the beam shrinks as paths finish (alphamath) or keeps its width."
    )
    score: ScoreSource = Field(
        "auto", description="Candidate score: reward_model, prior (exp mean path logprob), or auto (model if configured)."
    )
    aggregation: PrmAggregation = Field("last", description="Per-step reward scores -> path score (AlphaMath value: last).")
    answer_by: Literal["best", "vote"] = Field("best", description="best = highest score; vote = score-weighted vote.")
    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature; None = the context default (AlphaMath 0.6).")
    dedupe: bool = Field(True, description="Drop duplicate sibling steps (AlphaMath does).")
    adaptive_parallel: bool = Field(
        False, description="While the engine is under-filled (few live trees: the server's sequences in flight below "
        "model.target_in_flight), also expand the best unfinished candidates that ranked below the beam, up to "
        "max_width nodes per level; their children compete for the beam's places, so results differ: off by "
        "default; the trace records the setting and each tree's widths (extra.parallel).")
    max_width: int = Field(
        8, ge=1, description="Nodes expanded per level with adaptive_parallel (beam + extra; >= beam_width to matter).")

    def needs(self) -> tuple[Need, ...]:
        return score_need(self.score)


async def step_beam_search(ctx: SearchContext, config: StepBeamConfig) -> SearchResult:
    """Runs step beam search from the root; finished answers are ranked by score."""
    b1, b2 = config.beam_width, config.num_children
    alphamath = config.variant == "alphamath"
    outcome = await beam_search(
        ctx,
        0,
        width=b1,
        num_children=b2,
        root_children=b1 * b2,
        score_fn=score_fn_for(ctx, config.score, config.aggregation),
        shrink=alphamath,
        target_finished=None if alphamath else b1 * b2,
        temperature=config.temperature,
        dedupe=config.dedupe,
        max_width=config.max_width if config.adaptive_parallel else None,
    )
    return finish_beam(ctx, config.algorithm, outcome, config.answer_by, parallel=outcome.parallel)
