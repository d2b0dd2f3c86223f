"""ReST-MCTS* (spec 02): process-reward-guided MCTS with roll-forward and an end gate.

The generic loop (``search.loop``) with:

- **select**: UCT on the quality value V with ``sqrt(2 ln N / n)``; an unvisited child scores
  its initial value plus ``unvisited_bonus`` (the code's ``V + INF``) (§3).
- **expand**: ``branch`` next steps in one request, duplicate sibling steps merged, each child
  valued by the reward model (V = its score of the partial solution, in [0, 1]).
- **roll-forward** (``rollout_fn``): the UCT-best new child rolls ``roll_forward_steps`` steps
  ahead, each time sampling ``roll_branch`` continuations, scoring them and keeping the best
  (greedy) or a random one; its V becomes ``(1 - alpha) V + alpha max(seen)``. The rolled steps
  are not added to the tree (§3 Simulation); their best value is kept as ``scores["roll_forward"]``.
- **backup**: visit-weighted mean of the visited children, from the rolled child up (§3).
- **end gate** (``gate_fn``): a selected node with V >= ``end_gate`` ends the search in
  ``eval`` mode; in ``data`` mode it is closed (``Node.end``: never expanded, an end leaf) and
  the search goes on to the iteration limit (§3, §6).

The final answer (§5): the node that stopped the search (eval mode), else the end leaf with
the highest V (``answer_by: value``) or a V-weighted vote over end leaves (``vote``); with no
answered end leaf, the highest-V leaf.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from search.aggregate import best_node, end_leaves, vote_path
from search.algorithms.common import (
    ADAPTIVE_PARALLEL_DESCRIPTION,
    MAX_PARALLEL_DESCRIPTION,
    ConfigBase,
    Need,
    check_parallel,
    value_need,
)
from search.backup import visit_weighted_backup
from search.context import SearchContext
from search.evaluators import ValueSource, make_value_fn
from search.loop import GateAction, LoopFns, run_simulations
from search.protocols import EngineFault, PonderError
from search.selection import make_select_fn
from search.trace import SearchResult
from search.tree import Node

PRESETS: dict[str, dict[str, Any]] = {
    # spec 02 §4: the three columns of defaults
    "mcts_task": {"num_iterations": 50, "c": 0.7, "roll_forward_steps": 3, "end_gate": 0.9,
                  "unvisited_bonus": 1.0, "mode": "eval"},
    "evaluate": {"num_iterations": 100, "c": 0.4, "roll_forward_steps": 2, "end_gate": 0.9,
                 "unvisited_bonus": 0.8, "mode": "eval"},
    "data": {"num_iterations": 50, "c": 0.5, "roll_forward_steps": 1, "end_gate": 0.8,
             "unvisited_bonus": 0.9, "mode": "data"},
}
"""``MCTS_Task`` defaults (its iteration limit is unset there: 50 here), ``evaluate.py``'s
test settings, and the MATH data-generation settings. Fields set explicitly win."""


class RestMctsConfig(ConfigBase):
    """ReST-MCTS*: UCT on quality values, roll-forward with value mixing, visit-weighted
    backup, end gate. ``preset`` fills every field left unset (spec 02 §4)."""

    algorithm: Literal["rest_mcts"] = Field("rest_mcts", description="Discriminator.")
    preset: Literal["mcts_task", "evaluate", "data"] = Field(
        "mcts_task", description="Column of spec 02 §4 whose defaults fill unset fields.")
    mode: Literal["eval", "data"] = Field(
        "eval", description="eval: stop at the first selected node with V >= end_gate; data: close it and go on.")
    num_iterations: int = Field(50, ge=1, description="Iteration limit (selections).")
    branch: int = Field(3, ge=1, description="b: steps sampled per expansion.")
    c: float = Field(0.7, gt=0.0, description="UCT exploration constant C.")
    unvisited_bonus: float = Field(1.0, ge=0.0, description="INF: an unvisited child scores V + INF.")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the roll-forward's best value.")
    roll_forward_steps: int = Field(3, ge=0, description="Steps rolled forward from the chosen child (0: none).")
    roll_branch: int = Field(1, ge=1, description="Continuations sampled per roll-forward step.")
    roll_policy: Literal["greedy", "random"] = Field("greedy", description="Keep the best-valued or a random continuation.")
    end_gate: float = Field(0.9, gt=0.0, le=1.0, description="V at which a selected node ends its path.")
    value: ValueSource = Field("reward_model", description="Step values: reward_model (PRM / value model / self-eval) or prior.")
    answer_by: Literal["value", "vote"] = Field("value", description="Highest-V end leaf, or V-weighted vote over end leaves.")
    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature; None = the context default (0.7).")
    num_parallel: int = Field(1, ge=1, description="Iterations in flight per tree, with virtual loss.")
    adaptive_parallel: bool = Field(False, description=ADAPTIVE_PARALLEL_DESCRIPTION.replace("simulations", "iterations"))
    max_parallel: int = Field(8, ge=1, description=MAX_PARALLEL_DESCRIPTION.replace("simulation", "iteration"))

    @model_validator(mode="before")
    @classmethod
    def _fill_preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            preset = PRESETS.get(str(data.get("preset", "mcts_task")), {})
            return {**preset, **data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RestMctsConfig:
        check_parallel(self.num_parallel, self.max_parallel, self.num_iterations, "num_iterations")
        return self

    def needs(self) -> tuple[Need, ...]:
        return value_need(self.value)

    @property
    def backs_up_values(self) -> bool:
        return True


def quality(node: Node) -> float:
    """ReST-MCTS*'s V of a node: its backed-up value once visited, else its initial value."""
    return node.value if node.visits else (node.first_value or 0.0)


async def roll_forward(ctx: SearchContext, node_id: int, config: RestMctsConfig, rng: random.Random) -> float | None:
    """The best value seen rolling ``config.roll_forward_steps`` steps ahead of ``node_id``, or
    None when nothing was rolled (terminal node, budget spent, a node-level failure)."""
    tree = ctx.tree
    if tree.nodes[node_id].terminal:
        return None
    prefix = tree.path_token_ids(node_id)
    texts = tree.path_texts(node_id)
    depth = tree.nodes[node_id].depth
    best: float | None = None
    for _ in range(config.roll_forward_steps):
        if ctx.exhausted() or depth >= ctx.steps.max_depth:
            break
        sampling = ctx.step_sampling(node_id, prefix, config.roll_branch, config.temperature)
        try:
            proposals = (await ctx.propose(prefix, sampling)).proposals
            proposals = tuple(p for p in proposals if p.finish_reason != "error" and p.text)
            if not proposals:
                break
            if config.value == "reward_model":
                scored = await ctx.score([[*texts, p.text] for p in proposals], [len(texts)] * len(proposals))
                values = [min(max(s[-1], 0.0), 1.0) if s else 0.0 for s in scored.scores]
            else:  # prior: exp(mean token logprob of the step)
                values = [math.exp(p.mean_logprob) for p in proposals]
        except EngineFault:
            raise
        except PonderError:
            break
        k = max(range(len(proposals)), key=lambda i: values[i]) if config.roll_policy == "greedy" else rng.randrange(len(proposals))
        best = values[k] if best is None else max(best, values[k])
        step = proposals[k]
        prefix = [*prefix, *step.token_ids]
        texts = [*texts, step.text]
        depth += 1
        if ctx.steps.is_terminal(step, depth):
            break
    return best


def choose(ctx: SearchContext, config: RestMctsConfig, stopped_at: int | None) -> int | None:
    """The answer node (spec 02 §5)."""
    tree = ctx.tree
    if stopped_at is not None:
        return stopped_at
    answered = [i for i in end_leaves(tree) if tree.nodes[i].answer is not None]
    if answered:
        if config.answer_by == "vote":
            return vote_path(tree, answered, [quality(tree.nodes[i]) for i in answered])
        return best_node(answered, lambda i: quality(tree.nodes[i]))
    return best_node([i for i in tree.leaves() if i != 0], lambda i: quality(tree.nodes[i]))


async def rest_mcts_search(ctx: SearchContext, config: RestMctsConfig) -> SearchResult:
    """Runs ReST-MCTS* on ``ctx.tree``; ``extra`` records iterations, whether the end gate
    stopped the search, and how many paths it closed."""
    tree = ctx.tree
    rng = random.Random(f"{ctx.problem.id}:{ctx.sampling.seed}")
    evaluate_fn = make_value_fn(ctx, config.value, aggregation="last")
    select_fn = make_select_fn("uct", config.c, unvisited_bonus=config.unvisited_bonus)
    stopped_at: list[int] = []
    closed: list[int] = []

    async def expand_fn(node_id: int) -> list[int]:
        children = await ctx.expand(node_id, config.branch, temperature=config.temperature, dedupe=True)
        with ctx.bookkeeping():
            path = set(tree.path_texts(node_id))
            for c in children:  # spec 02 §3 Expansion: a step already in the prefix is rejected
                node = tree.nodes[c]
                if node.text.strip() and node.text in path:
                    node.error = "repeats a step of its own prefix"
        return [c for c in children if tree.nodes[c].error is None]

    def gate_fn(node_id: int) -> GateAction:
        node = tree.nodes[node_id]
        if quality(node) < config.end_gate:
            return "expand"
        if config.mode == "eval":
            stopped_at.append(node_id)
            return "stop"
        if node.terminal:  # already an end leaf
            return "expand"
        if node.answer is None:
            node.answer = ctx.extract_fn(tree.path_text(node_id))
        closed.append(node_id)
        return "close"

    async def rollout_fn(children: Sequence[int], values: Sequence[float]) -> list[tuple[int, float]]:
        for c, v in zip(children, values, strict=True):
            tree.nodes[c].first_value = v
        parent = tree.nodes[children[0]].parent
        roll = select_fn(tree, parent if parent is not None else 0, list(children))
        v = quality(tree.nodes[roll])
        best = await roll_forward(ctx, roll, config, rng)
        if best is not None:
            tree.nodes[roll].scores["roll_forward"] = best
            v = (1.0 - config.alpha) * v + config.alpha * best
        return [(roll, v)]

    fns = LoopFns(select_fn=select_fn, expand_fn=expand_fn, evaluate_fn=evaluate_fn,
                  backup_fn=visit_weighted_backup, gate_fn=gate_fn, rollout_fn=rollout_fn)
    run = await run_simulations(ctx, fns, config.num_iterations, config.num_parallel,
                                max_parallel=config.max_parallel if config.adaptive_parallel else None,
                                grant_size=config.branch)
    with ctx.bookkeeping():
        chosen = choose(ctx, config, stopped_at[0] if stopped_at else None)
        if chosen is not None and tree.nodes[chosen].answer is None:
            tree.nodes[chosen].answer = ctx.extract_fn(tree.path_text(chosen))
    return ctx.result(config.algorithm, chosen, iterations=run.started, end_gate_stopped=bool(stopped_at),
                      closed=len(closed), parallel=run.parallel.to_dict())
