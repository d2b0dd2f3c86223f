"""Diverse verifier tree search (search-and-learn DVTS): N/M independent greedy subtrees."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field, model_validator

from search.algorithms.common import ConfigBase, Need, ScoreSource, finish_beam, score_fn_for, score_need
from search.beam import BeamOutcome, beam_search
from search.context import SearchContext
from search.evaluators import PrmAggregation
from search.trace import SearchResult


class DvtsConfig(ConfigBase):
    """Split N candidates into N/M subtrees; each is a width-1 beam over M candidates per
    step, kept by the verifier's (reward model's) score."""

    algorithm: Literal["dvts"] = Field("dvts", description="Discriminator.")
    num_samples: int = Field(16, ge=1, description="N: candidates per step over all subtrees.")
    subtree_width: int = Field(4, ge=1, description="M: candidates per subtree and step.")
    score: ScoreSource = Field("auto", description="Candidate score: reward_model, prior, or auto.")
    aggregation: PrmAggregation = Field("last", description="Per-step reward scores -> path score.")
    answer_by: Literal["best", "vote"] = Field("vote", description="Over the subtrees' answers: best score or weighted vote.")
    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature; None = the context default.")
    adaptive_parallel: bool = Field(
        False, description="While the engine is under-filled (few live trees: the server's sequences in flight below "
        "model.target_in_flight), each subtree also expands its best unfinished candidates below its one kept path, "
        "up to max_width nodes per level; their children compete for the subtree's place, so results differ: off "
        "by default; the trace records the setting and each subtree's widths (extra.parallel).")
    max_width: int = Field(
        3, ge=1, description="Nodes one subtree expands per level with adaptive_parallel (its kept path + extra; "
        ">= 2 to matter). 3: with N/M subtrees each widening, the engine is filled by the subtrees' number first.")

    @model_validator(mode="after")
    def _m_divides_n(self) -> DvtsConfig:
        if self.num_samples % self.subtree_width:
            raise ValueError(f"subtree_width={self.subtree_width} must divide num_samples={self.num_samples}")
        return self

    def needs(self) -> tuple[Need, ...]:
        return score_need(self.score)


async def dvts_search(ctx: SearchContext, config: DvtsConfig) -> SearchResult:
    """Runs the N/M subtrees concurrently from the root and aggregates their answers.

    ``extra["subtrees"]`` holds each subtree's final node id (finished, last beam or dropped node);
    ``extra["parallel"]`` the nodes expanded per level over the subtrees (``floor`` and ``bound``
    summed over them, ``max_in_flight`` the widest subtree, ``mean_in_flight`` the subtrees'
    mean, ``extra`` summed) and each subtree's own record (``subtrees``).
    """
    score_fn = score_fn_for(ctx, config.score, config.aggregation)
    m = config.subtree_width
    outcomes = await asyncio.gather(
        *(
            beam_search(ctx, 0, width=1, num_children=m, score_fn=score_fn, temperature=config.temperature,
                        max_width=config.max_width if config.adaptive_parallel else None)
            for _ in range(config.num_samples // m)
        )
    )
    merged = BeamOutcome(active=[])
    for o in outcomes:
        merged.finished += o.finished
        merged.dropped += o.dropped
        merged.active += o.active
        merged.scores |= o.scores
    ends = [(o.finished or o.active or o.dropped or [None])[0] for o in outcomes]
    return finish_beam(ctx, config.algorithm, merged, config.answer_by, subtrees=ends,
                       parallel=subtrees_parallel([o.parallel for o in outcomes]))


def subtrees_parallel(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One tree's parallelism from its subtrees' (``BeamOutcome.parallel``)."""
    return {
        "adaptive": any(r["adaptive"] for r in records),
        "floor": sum(r["floor"] for r in records),
        "bound": sum(r["bound"] for r in records),
        "max_in_flight": max((r["max_in_flight"] for r in records), default=0),
        "mean_in_flight": round(sum(r["mean_in_flight"] for r in records) / len(records), 3) if records else 0.0,
        "extra": sum(r["extra"] for r in records),
        "held_by_budget": sum(r.get("held_by_budget", 0) for r in records),
        "subtrees": records,
    }
