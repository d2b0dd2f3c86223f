"""The generic step-level beam loop, shared by step beam search and DVTS (each fixes its
width, branching, scorer and temperature). Methods that do not branch inside a solution
(cot, self-consistency, best-of-N) sample whole chains instead (``sample_chains``), and
their outcome is the same ``BeamOutcome``.

One level: expand every beam node (the start node gets ``root_children`` children, later
nodes ``num_children``), score the candidates, keep the top ``width`` by score (ties:
creation order). A kept terminal with an answer is finished, a kept terminal without one
(or an errored node) is dropped; with ``shrink`` (AlphaMath SBS) each finished or dropped
path narrows the beam by one, otherwise (search-and-learn) the width stays and the search
stops once ``target_finished`` paths finished. A beam node whose expansion failed is
dropped. The search also stops when the beam is empty, no candidate came back or the
budget is exhausted, returning what it has (never because an answer looks right).
"""

from __future__ import annotations

import asyncio
import dataclasses

from search.context import SearchContext
from search.evaluators import ValueFn


@dataclasses.dataclass
class BeamOutcome:
    """What a beam search produced.

    Attributes:
        finished: Answered terminal ids, in the order they finished.
        dropped: Ids of kept paths that ended without an answer or errored.
        active: Beam node ids left when the search stopped (budget exhausted).
        scores: Score in [0, 1] of every scored candidate, by id.
    """

    finished: list[int] = dataclasses.field(default_factory=list)
    dropped: list[int] = dataclasses.field(default_factory=list)
    active: list[int] = dataclasses.field(default_factory=list)
    scores: dict[int, float] = dataclasses.field(default_factory=dict)


async def beam_search(
    ctx: SearchContext,
    start: int,
    *,
    width: int,
    num_children: int,
    root_children: int | None = None,
    score_fn: ValueFn | None = None,
    shrink: bool = True,
    target_finished: int | None = None,
    temperature: float | None = None,
    dedupe: bool = False,
) -> BeamOutcome:
    """Runs a step-level beam search from node ``start`` of ``ctx.tree``.

    Args:
        ctx: The search context.
        start: Node to search from (0 = the root).
        width: Beam width B1 (>= 1).
        num_children: Children sampled per beam node, B2 (>= 1).
        root_children: Children of ``start`` (AlphaMath: B1 * B2); default ``num_children``.
        score_fn: Candidate scorer; None keeps the first ``width`` candidates unscored.
        shrink: Narrow the beam as paths finish (AlphaMath SBS) or keep it (search-and-learn).
        target_finished: Stop once this many paths finished (None: only when the beam empties).
        temperature: Overrides the default sampling temperature.
        dedupe: Drop candidate steps whose text equals a sibling's.
    """
    out = BeamOutcome(active=[start])
    k, tree = width, ctx.tree
    branching = root_children or num_children
    while out.active and k > 0 and not ctx.exhausted():
        groups = await asyncio.gather(
            *(ctx.expand(b, branching, temperature=temperature, dedupe=dedupe) for b in out.active)
        )
        branching = num_children
        candidates = [c for group in groups for c in group]
        if not candidates:
            break
        failed = [b for b in out.active if tree.nodes[b].error is not None]
        out.dropped.extend(failed)
        k = max(k - shrink * len(failed), 0)
        if score_fn is not None:
            out.scores.update(zip(candidates, await score_fn(candidates), strict=True))
        with ctx.bookkeeping():
            ranked = sorted(candidates, key=lambda c: -out.scores.get(c, 0.0))
            out.active = []
            for c in ranked[:k]:
                node = tree.nodes[c]
                if node.terminal or node.error is not None:
                    (out.finished if node.answer is not None and node.error is None else out.dropped).append(c)
                    k -= shrink
                else:
                    out.active.append(c)
        if target_finished is not None and len(out.finished) >= target_finished:
            break
    return out
