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
        return self

    def needs(self) -> tuple[Need, ...]:
        if self.priority == "reward_model":
            return (Need("reward_model", "priority", "priority: logprob"),)
        return ()


async def best_first_search(ctx: SearchContext, config: BestFirstConfig) -> SearchResult:
    """Runs best-first search; ``extra["expansion_order"]`` lists expanded ids in pop order."""
    tree = ctx.tree
    value_fn = make_value_fn(ctx, "reward_model", aggregation=config.aggregation) if config.priority == "reward_model" else None
    step_logprobs: dict[int, list[float]] = {0: []}
    priority: dict[int, float] = {0: 0.0}
    frontier = Frontier(config.max_expansions)
    found: list[int] = []
    while frontier.can_pop() and len(found) < config.max_terminals and not ctx.exhausted():
        with ctx.bookkeeping():
            batch = frontier.pop(config.num_parallel)
        groups = await asyncio.gather(
            *(ctx.expand(i, config.expansion_width, temperature=config.temperature, dedupe=config.dedupe) for i in batch)
        )
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
    return ctx.result(config.algorithm, chosen, expansion_order=frontier.expansion_order, found=found)
