"""Best-first search over steps (BFS-Prover, spec 04 §2): the shared ``search.frontier``
of open nodes, popped by priority, expanded through the context."""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field, model_validator

from search.aggregate import best_node, vote_path
from search.algorithms.common import ConfigBase, Need
from search.context import SearchContext
from search.evaluators import PrmAggregation, make_value_fn
from search.frontier import Frontier
from search.occupancy import Lease
from search.selection import bfs_priority
from search.trace import SearchResult


class BestFirstConfig(ConfigBase):
    """Best-first search: pop the highest-priority open node, expand it, push its children.

    Priority ``logprob``: Σ per-step mean token logprob / depth^α (BFS-Prover; the root is
    pushed with 0). Priority ``reward_model``: the path's reward-model score in [0, 1].
    """

    algorithm: Literal["best_first"] = Field("best_first", description="Discriminator.")
    expansion_width: int = Field(4, ge=1, description="Steps sampled per expansion (BFS-Prover script 4, CLI 16).")
    max_expansions: int = Field(64, ge=1, description="Node budget: at most this many nodes are expanded.")
    priority: Literal["logprob", "reward_model"] = Field("logprob", description="Queue key.")
    depth_alpha: float = Field(0.0, ge=0.0, description="α of the logprob priority (V2 code 0.0, run script 2.0).")
    aggregation: PrmAggregation = Field("last", description="Per-step reward scores -> priority (reward_model only).")
    num_parallel: int = Field(1, ge=1, description="Nodes popped and expanded at once.")
    adaptive_parallel: bool = Field(
        False, description="While the engine is under-filled (few live trees: the server's sequences in flight below "
        "model.target_in_flight), pop and expand the next-best open nodes too, up to max_parallel at once; they spend "
        "the expansion budget in another order, so results differ: off by default; the trace records the setting "
        "and the parallelism each tree used (extra.parallel).")
    max_parallel: int = Field(
        8, ge=1, description="Nodes expanded at once with adaptive_parallel (>= num_parallel; num_parallel is the "
        "floor).")
    max_terminals: int = Field(1, ge=1, description="Stop once this many answered terminal paths were found.")
    answer_by: Literal["priority", "vote"] = Field(
        "priority", description="Among found answers: the highest-priority one, or a majority vote."
    )
    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature; None = the context default.")
    dedupe: bool = Field(True, description="Drop duplicate sibling steps (BFS-Prover dedups tactics).")

    @model_validator(mode="after")
    def _parallel_within_budget(self) -> BestFirstConfig:
        if self.num_parallel > self.max_expansions:
            raise ValueError(f"num_parallel={self.num_parallel} exceeds max_expansions={self.max_expansions}")
        if self.max_parallel < self.num_parallel:
            raise ValueError(f"max_parallel={self.max_parallel} is below num_parallel={self.num_parallel}: set "
                             f"max_parallel >= num_parallel (it bounds adaptive_parallel; num_parallel is its floor)")
        return self

    def needs(self) -> tuple[Need, ...]:
        if self.priority == "reward_model":
            return (Need("reward_model", "priority", "priority: logprob"),)
        return ()


async def best_first_search(ctx: SearchContext, config: BestFirstConfig) -> SearchResult:
    """Runs best-first search; ``extra["expansion_order"]`` lists expanded ids in pop order,
    ``extra["parallel"]`` the nodes expanded at once (``floor`` num_parallel, ``bound``,
    ``max_in_flight`` and ``mean_in_flight`` over rounds, ``extra`` nodes popped on a grant).

    With ``adaptive_parallel``, a round pops the floor, reserves their sequences in
    ``ctx.occupancy`` (so that grants see them), then pops one more node per grant of
    ``expansion_width`` sequences while the engine is under-filled, up to ``max_parallel``.
    """
    tree = ctx.tree
    width = config.expansion_width
    occupancy = ctx.occupancy if config.adaptive_parallel and config.max_parallel > config.num_parallel else None
    bound = config.max_parallel if occupancy is not None else config.num_parallel
    rounds: list[int] = []
    granted = held = 0

    async def expand(node_id: int, lease: Lease | None) -> list[int]:
        if lease is not None:
            lease.bind()
        try:
            return await ctx.expand(node_id, width, temperature=config.temperature, dedupe=config.dedupe)
        finally:
            if lease is not None:
                lease.settle()

    value_fn = make_value_fn(ctx, "reward_model", aggregation=config.aggregation) if config.priority == "reward_model" else None
    step_logprobs: dict[int, list[float]] = {0: []}
    priority: dict[int, float] = {0: 0.0}
    frontier = Frontier(config.max_expansions)
    found: list[int] = []
    while frontier.can_pop() and len(found) < config.max_terminals and not ctx.exhausted():
        with ctx.bookkeeping():
            batch = frontier.pop(config.num_parallel)
            leases: list[Lease | None] = [None] * len(batch)
            if occupancy is not None:
                leases = [occupancy.reserve(width) for _ in batch]
                while len(batch) < bound and frontier.can_pop():
                    if ctx.meter.would_reach(len(batch) + 1):  # extra pops never overshoot the token budget
                        held += 1
                        break
                    if (lease := occupancy.grant(width)) is None:
                        break
                    batch += frontier.pop(1)
                    leases.append(lease)
                    granted += 1
            rounds.append(len(batch))
        groups = await asyncio.gather(*(expand(i, lease) for i, lease in zip(batch, leases, strict=True)))
        children = [c for group in groups for c in group]
        values = await value_fn(children) if value_fn is not None and children else None
        with ctx.bookkeeping():
            for k, c in enumerate(children):
                node = tree.nodes[c]
                step_logprobs[c] = step_logprobs[node.parent] + [node.logprob_mean]
                priority[c] = values[k] if values is not None else bfs_priority(step_logprobs[c], config.depth_alpha)
                if node.error is not None:
                    continue
                if not node.terminal:
                    frontier.push(c, priority[c])
                elif node.answer is not None:
                    found.append(c)
    with ctx.bookkeeping():
        if config.answer_by == "vote":
            chosen = vote_path(tree, found, [1.0] * len(found))
        else:
            chosen = best_node(found, priority.__getitem__)
        if chosen is None:
            chosen = best_node(list(priority)[1:], priority.__getitem__)
    parallel = {"adaptive": occupancy is not None, "floor": config.num_parallel, "bound": bound,
                "max_in_flight": max(rounds, default=0),
                "mean_in_flight": round(sum(rounds) / len(rounds), 3) if rounds else 0.0, "extra": granted,
                "held_by_budget": held}
    return ctx.result(config.algorithm, chosen, expansion_order=frontier.expansion_order, found=found,
                      parallel=parallel)
