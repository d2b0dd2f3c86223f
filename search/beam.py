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

Adaptive frontier (``max_width`` above ``width``): while the engine is under-filled
(``ctx.occupancy``), a level also expands the best candidates that ranked below the beam and
did not finish, up to ``max_width`` nodes in all, each on a grant of its request's
sequences. Their children compete with the beam's for the ``width`` places at the next
level, so this changes what the search does: the algorithms put it behind their
``adaptive_parallel`` switch. The beam itself (what finishes, what is dropped, the answer's
candidates) stays ``width`` wide; the extra nodes are never finished or returned as such.
"""

from __future__ import annotations

import asyncio
import dataclasses

from search.context import SearchContext
from search.evaluators import ValueFn
from search.occupancy import Lease


@dataclasses.dataclass
class BeamOutcome:
    """What a beam search produced.

    Attributes:
        finished: Answered terminal ids, in the order they finished.
        dropped: Ids of kept paths that ended without an answer or errored.
        active: Beam node ids left when the search stopped (budget exhausted).
        scores: Score in [0, 1] of every scored candidate, by id.
        parallel: Nodes expanded at once per level: ``adaptive``, ``floor`` (width),
            ``bound`` (max_width), ``max_in_flight``, ``mean_in_flight`` (over levels),
            ``extra`` (nodes expanded on a grant), ``held_by_budget`` (levels where a grant
            stopped because the level's requests, at the search's mean tokens a request,
            would reach its token budget: ``Meter.would_reach``).
    """

    finished: list[int] = dataclasses.field(default_factory=list)
    dropped: list[int] = dataclasses.field(default_factory=list)
    active: list[int] = dataclasses.field(default_factory=list)
    scores: dict[int, float] = dataclasses.field(default_factory=dict)
    parallel: dict[str, object] = dataclasses.field(default_factory=dict)


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
    max_width: int | None = None,
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
        max_width: With ``ctx.occupancy``, expand up to this many nodes per level while the
            engine is under-filled (the adaptive frontier); None or <= ``width``: the beam only.
    """
    out = BeamOutcome(active=[start])
    k, tree = width, ctx.tree
    branching = root_children or num_children
    occupancy = ctx.occupancy if max_width is not None and max_width > width else None
    bound = max_width if occupancy is not None and max_width is not None else width
    extra: list[int] = []  # below-beam candidates expanded this level on a grant
    leases: list[Lease | None] = []
    levels: list[int] = []
    granted = held = 0

    async def expand(node_id: int, lease: Lease | None) -> list[int]:
        if lease is not None:
            lease.bind()
        try:
            return await ctx.expand(node_id, branching, temperature=temperature, dedupe=dedupe)
        finally:
            if lease is not None:
                lease.settle()

    def reserve(nodes: list[int], size: int) -> list[Lease | None]:
        """The beam's own expansions run anyway; counted until sent, so grants see them."""
        return [occupancy.reserve(size) if occupancy is not None else None for _ in nodes]

    floor = reserve(out.active, branching)
    while out.active and k > 0 and not ctx.exhausted():
        levels.append(len(out.active) + len(extra))
        groups = await asyncio.gather(*(expand(b, lease) for b, lease in zip([*out.active, *extra],
                                                                             [*floor, *leases], strict=True)))
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
            beam, below = ranked[:k], ranked[k:]
            out.active = []
            for c in beam:
                node = tree.nodes[c]
                if node.terminal or node.error is not None:
                    (out.finished if node.answer is not None and node.error is None else out.dropped).append(c)
                    k -= shrink
                else:
                    out.active.append(c)
            floor, extra, leases = reserve(out.active, num_children), [], []
            if occupancy is not None:  # the adaptive frontier: next best unfinished candidates
                for c in below:
                    node = tree.nodes[c]
                    if len(out.active) + len(extra) >= bound or node.terminal or node.error is not None:
                        continue
                    if ctx.meter.would_reach(len(out.active) + len(extra) + 1):
                        held += 1  # an extra node would overshoot the token budget; the beam's own go on
                        break
                    if (lease := occupancy.grant(num_children)) is None:
                        break
                    extra.append(c)
                    leases.append(lease)
                granted += len(extra)
        if target_finished is not None and len(out.finished) >= target_finished:
            break
    for lease in [*floor, *leases]:  # for a level that did not run
        if lease is not None:
            lease.settle()
    out.parallel = {"adaptive": occupancy is not None, "floor": width, "bound": bound,
                    "max_in_flight": max(levels, default=0),
                    "mean_in_flight": round(sum(levels) / len(levels), 3) if levels else 0.0, "extra": granted,
                    "held_by_budget": held}
    return out
