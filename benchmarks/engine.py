"""A pure micro-benchmark of the search core's own overhead (no model involved)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence

from search.backup import mean_backup
from search.context import SearchContext
from search.evaluators import make_value_fn
from search.loop import LoopFns, descend, run_simulations
from search.protocols import Generation, Problem, Sampling, StepProposal, Usage
from search.selection import make_select_fn
from search.steps import StepFormat
from search.tree import Tree


class _InstantPolicy:
    """A zero-latency scripted policy: ``n`` distinct 8-token steps, never EOS."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        proposals = []
        for _ in range(sampling.n):
            k = next(self._counter)
            logprobs = tuple(-0.05 * (1 + (k * 7 + j) % 13) for j in range(8))
            proposals.append(StepProposal(f"step {k}\n\n", tuple(range(k, k + 8)), logprobs, "stop", "\n\n"))
        return Generation(tuple(proposals), Usage(prompt_tokens=len(prefix), generated_tokens=8 * sampling.n, calls=1))


def build_tree(num_nodes: int = 10_000, num_children: int = 4) -> Tree:
    """Grows a synthetic tree of at least ``num_nodes`` nodes with MCTS (PUCT, prior values)."""
    ctx = SearchContext(
        policy=_InstantPolicy(),
        root_prefix=[1, 2, 3],
        problem=Problem(id="bench", question="synthetic"),
        steps=StepFormat(max_depth=64),
        extract_fn=lambda text: None,
    )

    async def expand_fn(node_id: int) -> list[int]:
        return await ctx.expand(node_id, num_children)

    fns = LoopFns(make_select_fn("puct", 1.25), expand_fn, make_value_fn(ctx, "prior"), mean_backup)
    simulations = -(-(num_nodes - 1) // num_children)
    asyncio.run(run_simulations(ctx, fns, simulations))
    return ctx.tree


def select_backup_rate(num_nodes: int = 10_000, seconds: float = 0.5) -> float:
    """Select + backup operations per second on a synthetic ``num_nodes``-node tree.

    One operation = a PUCT descent from the root to a leaf plus a mean backup of a value
    from that leaf to the root. Tree building is not timed.

    Args:
        num_nodes: Size of the synthetic tree (>= 2).
        seconds: Minimum measuring time in seconds.

    Returns:
        Operations per second (wall clock, this process).
    """
    tree = build_tree(num_nodes)
    select_fn = make_select_fn("puct", 1.25)
    ops = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or ops == 0:
        for _ in range(100):
            path = descend(tree, select_fn, set())
            assert path is not None
            mean_backup(tree, path[-1], 0.5)
        ops += 100
    return ops / elapsed
