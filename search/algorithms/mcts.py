"""Monte-Carlo tree search over steps: the generic loop with UCT / PUCT / x1 selection."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from search.aggregate import answered_terminals, best_node, best_terminal, vote_path
from search.algorithms.common import (
    ADAPTIVE_PARALLEL_DESCRIPTION,
    MAX_PARALLEL_DESCRIPTION,
    ConfigBase,
    Need,
    check_parallel,
    value_need,
)
from search.backup import BackupRule, backup_fn
from search.context import SearchContext
from search.evaluators import PrmAggregation, ValueSource, make_value_fn
from search.loop import LoopFns, descend, run_simulations
from search.selection import SelectFn, SelectionRule, make_select_fn
from search.trace import SearchResult
from search.tree import Tree

AnswerBy = Literal["visits", "selection", "value", "vote"]
DEFAULT_C = {"uct": 0.7, "puct": 1.25, "x1": 1.25}
"""ReST-MCTS* C (0.4-0.7), AlphaMath c_puct (1.25 at inference), x1's c1."""


class MctsConfig(ConfigBase):
    """MCTS: select (uct | puct | x1) -> expand -> evaluate -> backup, ``num_simulations`` times.

    Values live in [0, 1] (reward-model scores, rollout success rates, verdict rewards),
    so x1's q normalisation uses [0, 1] rather than x1's [-1, 1].
    """

    algorithm: Literal["mcts"] = Field("mcts", description="Discriminator.")
    num_simulations: int = Field(40, ge=1, description="Simulations (AlphaMath N = 40).")
    num_children: int = Field(5, ge=1, description="Steps sampled per expansion (AlphaMath B2 = 5; x1 M = 2; ReST b = 3).")
    selection: SelectionRule = Field("puct", description="uct (ReST-MCTS*), puct (AlphaMath) or x1.")
    c: float | None = Field(None, gt=0.0, description="Exploration constant (x1: c1); None = the rule's default.")
    c2: float = Field(19652.0, gt=0.0, description="x1's second constant (x1 only).")
    value: ValueSource = Field(
        "reward_model", description="Leaf value: reward_model, rollout (label mode only) or prior (exp mean logprob)."
    )
    aggregation: PrmAggregation = Field("last", description="Per-step reward scores -> value (reward_model only).")
    num_rollouts: int = Field(4, ge=1, description="Completions per Monte-Carlo estimate (rollout only).")
    verify_terminals: bool = Field(
        False, description="Value terminal nodes by the gold-answer oracle (label mode only; AlphaMath with ground truth)."
    )
    backup: BackupRule = Field("mean", description="mean (AlphaMath), max, or visit_weighted (ReST-MCTS*).")
    num_parallel: int = Field(1, ge=1, description="Simulations in flight per tree, with virtual loss.")
    adaptive_parallel: bool = Field(False, description=ADAPTIVE_PARALLEL_DESCRIPTION)
    max_parallel: int = Field(8, ge=1, description=MAX_PARALLEL_DESCRIPTION)
    answer_by: AnswerBy = Field(
        "value",
        description="visits: follow most-visited children; selection: follow the selection score (x1 code); "
        "value: answered terminal with the highest Q (AlphaMath q_value, x1 paper); vote: value-weighted "
        "vote (ReST-MCTS*).",
    )
    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature; None = the context default.")
    dedupe: bool = Field(True, description="Drop duplicate sibling steps.")

    @model_validator(mode="after")
    def _consistent(self) -> MctsConfig:
        check_parallel(self.num_parallel, self.max_parallel, self.num_simulations, "num_simulations")
        return self

    def needs(self) -> tuple[Need, ...]:
        terminals = (Need("oracle", "verify_terminals", "verify_terminals: false"),) if self.verify_terminals else ()
        return value_need(self.value) + terminals

    @property
    def backs_up_values(self) -> bool:
        return True

    @property
    def exploration(self) -> float:
        """The exploration constant in use."""
        return self.c if self.c is not None else DEFAULT_C[self.selection]


def _most_visited(tree: Tree, parent: int, candidates: list[int]) -> int:
    return max(candidates, key=lambda i: (tree.nodes[i].visits, tree.nodes[i].value, -i))


def choose_answer_node(tree: Tree, answer_by: AnswerBy, select_fn: SelectFn | None = None) -> int | None:
    """The node whose path is the search's answer.

    ``visits`` descends by visit count (ties: value), ``selection`` by ``select_fn``;
    if the descent stops short of an answered terminal, the best-valued answered terminal
    below it (else anywhere) is taken. Falls back to the most visited leaf when no
    terminal has an answer.
    """

    def value(i: int) -> float:
        return tree.nodes[i].value

    match answer_by:
        case "value":
            chosen = best_terminal(tree, value)
        case "vote":
            found = answered_terminals(tree)
            chosen = vote_path(tree, found, [value(i) for i in found])
        case "visits" | "selection":
            walk = select_fn if answer_by == "selection" and select_fn is not None else _most_visited
            path = descend(tree, walk, set()) or [0]
            chosen = best_terminal(tree, value, tree.subtree(path[-1])) or best_terminal(tree, value)
    if chosen is None:
        chosen = best_node([i for i in tree.leaves() if i != 0], lambda i: tree.nodes[i].visits)
    return chosen


async def mcts_search(ctx: SearchContext, config: MctsConfig) -> SearchResult:
    """Runs MCTS on ``ctx.tree``; ``extra["simulations"]`` counts simulations run,
    ``extra["parallel"]`` the simulations in flight (``search.loop.Parallelism``)."""
    evaluate_fn = make_value_fn(
        ctx,
        config.value,
        aggregation=config.aggregation,
        num_rollouts=config.num_rollouts,
        verify_terminals=config.verify_terminals,
    )

    async def expand_fn(node_id: int) -> list[int]:
        return await ctx.expand(node_id, config.num_children, temperature=config.temperature, dedupe=config.dedupe)

    select_fn = make_select_fn(config.selection, config.exploration, c2=config.c2, q_range=(0.0, 1.0))
    fns = LoopFns(
        select_fn=select_fn,
        expand_fn=expand_fn,
        evaluate_fn=evaluate_fn,
        backup_fn=backup_fn(config.backup),
    )
    run = await run_simulations(ctx, fns, config.num_simulations, config.num_parallel,
                                max_parallel=config.max_parallel if config.adaptive_parallel else None,
                                grant_size=config.num_children)
    with ctx.bookkeeping():
        chosen = choose_answer_node(ctx.tree, config.answer_by, select_fn)
    return ctx.result(config.algorithm, chosen, simulations=run.started, parallel=run.parallel.to_dict())
