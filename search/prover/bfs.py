"""One best-first proof attempt (BFS-Prover, spec 04 §2) from a proof state.

The open proof states wait in the shared best-first frontier (``search.frontier.Frontier``)
keyed by ``Σ per-tactic mean token logprob / depth^α`` (``search.selection.bfs_priority``;
the root gets 0), their states as transposition keys. Popping a state samples
``expansion_width`` tactics for it in one request, drops duplicates and refused ones, and
runs them one by one in the environment: an error becomes an errored child, a state already
seen is recorded but not pushed again (transpositions, spec 04 §8), and a tactic that
reaches the goal ends the attempt. The tree is the ordinary search arena
(``search.tree.Tree``): a node per tactic, its error message on ``node.error``. What the
attempt spends goes on the theorem's ``search.budget.Meter`` (shared by its agents): requests
are reserved before they are sent, tactic runs are its tool calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from pydantic import Field

from search.algorithms.common import ConfigBase
from search.budget import Meter
from search.frontier import Frontier
from search.protocols import Policy, ProofEnv, ProofState, Sampling, StepProposal, TacticStatus, Tokenizer
from search.prover.prompts import parse_tactic, tactic_prompt
from search.selection import bfs_priority
from search.tree import Tree


class ProverConfig(ConfigBase):
    """One prover agent's best-first search (spec 04 §2)."""

    expansion_width: int = Field(4, ge=1, description="Tactics sampled per expanded state (BFS-Prover script 4, CLI 16).")
    max_expansions: int = Field(8, ge=1, description="States expanded per attempt (the per-attempt budget).")
    depth_alpha: float = Field(0.0, ge=0.0, description="α of the priority Σ logprob / depth^α (V2 code 0, run script 2).")
    temperature: float = Field(1.0, ge=0.0, description="Tactic sampling temperature (V2 script 1.3, CLI 0.7).")
    max_tactic_tokens: int = Field(48, ge=1, description="Token limit of one tactic.")
    tactic_timeout_s: float | None = Field(None, gt=0, description="Per-tactic limit in seconds; None: the environment's.")
    focus: bool = Field(True, description="Prompt with the first goal only (V2 focus mode).")


@dataclasses.dataclass
class Attempt:
    """One attempt's outcome. ``tactics`` go from the attempt's root to the goal when proved.

    ``steps`` holds per proof tactic ``{state, tactic, seconds, logprob}`` and ``pairs``
    ``{state, chosen, rejected}`` (the tactic on the proof path vs. one that errored from the
    same state: V1's DPO data, spec 04 §3).
    """

    status: Literal["proved", "exhausted", "budget", "preempted"]
    tree: Tree
    states: dict[int, str]
    tactics: list[str] = dataclasses.field(default_factory=list)
    steps: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    pairs: list[dict[str, str]] = dataclasses.field(default_factory=list)
    expansion_order: list[int] = dataclasses.field(default_factory=list)
    merged: dict[int, int] = dataclasses.field(default_factory=dict)
    seconds: dict[int, float] = dataclasses.field(default_factory=dict)


def _proposal_node(tree: Tree, parent: int, proposal: StepProposal, tactic: str) -> int:
    node = tree.add_child(parent, dataclasses.replace(proposal, text=tactic), terminal=False)
    return node.id


async def best_first_attempt(
    root: ProofState,
    env: ProofEnv,
    policy: Policy,
    tokenizer: Tokenizer,
    config: ProverConfig,
    meter: Meter,
    *,
    goal_reached: Callable[[ProofState], bool],
    preempted: Callable[[], Awaitable[bool]] | None = None,
    statement: str = "",
    seed: int | None = None,
) -> Attempt:
    """Runs one attempt from ``root`` until ``goal_reached`` holds for a state (proved), the queue
    empties or ``max_expansions`` states were expanded (exhausted), the meter's budget ends
    (budget), or ``preempted()`` says another agent made this attempt moot (preempted)."""
    tree = Tree(())
    states: dict[int, ProofState] = {0: root}
    step_logprobs: dict[int, list[float]] = {0: []}
    frontier = Frontier(config.max_expansions, root_key=root)
    out = Attempt("exhausted", tree, {}, expansion_order=frontier.expansion_order, merged=frontier.merged)
    while frontier.can_pop():
        if meter.exhausted():
            out.status = "budget"
            break
        if preempted is not None and await preempted():
            out.status = "preempted"
            break
        if not meter.reserve():
            out.status = "budget"
            break
        node_id = frontier.pop()[0]
        state = states[node_id]
        proposals = await _sample(state, env, policy, tokenizer, config, meter, statement,
                                  None if seed is None else seed + len(out.expansion_order))
        tried: set[str] = set()
        for proposal in proposals:
            tactic = parse_tactic(proposal.text)
            if not tactic or tactic in tried:
                continue
            tried.add(tactic)
            child = _proposal_node(tree, node_id, proposal, tactic)
            result = await asyncio.to_thread(env.apply, state, tactic, config.tactic_timeout_s)
            meter.add_tool(result.seconds)
            out.seconds[child] = result.seconds
            step_logprobs[child] = step_logprobs[node_id] + [proposal.mean_logprob]
            if result.status is TacticStatus.ERROR or result.state is None:
                tree.nodes[child].error = result.error or "error"
                continue
            new = result.state
            if result.status is TacticStatus.PROVED or goal_reached(new):
                tree.nodes[child].terminal = True
                tree.nodes[child].answer = "proved"
                states[child] = new
                _finish(out, tree, states, child)
                return out
            if frontier.push(child, bfs_priority(step_logprobs[child], config.depth_alpha), key=new) is None:
                states[child] = new
    out.states = {i: s.text for i, s in states.items()}
    return out


async def _sample(state: ProofState, env: ProofEnv, policy: Policy, tokenizer: Tokenizer, config: ProverConfig,
                  meter: Meter, statement: str, seed: int | None) -> Sequence[StepProposal]:
    prompt = tokenizer.chat_prompt(tactic_prompt(env.name, state, focus=config.focus, statement=statement))
    sampling = Sampling(n=config.expansion_width, temperature=config.temperature, max_tokens=config.max_tactic_tokens,
                        stop=("\n",), include_stop_str_in_output=False, logprobs=0, seed=seed)
    start = time.perf_counter()
    generation = await policy.propose(prompt, sampling)
    meter.model_wait_seconds += time.perf_counter() - start
    # The request was reserved; tokens are counted here, the prompt's as sent.
    meter.add(dataclasses.replace(generation.usage, prompt_tokens=len(prompt),
                                  generated_tokens=sum(len(p.token_ids) for p in generation.proposals)),
              reserved=True)
    return generation.proposals


def _finish(out: Attempt, tree: Tree, states: dict[int, ProofState], goal: int) -> None:
    out.status = "proved"
    path = tree.path(goal)
    out.tactics = [tree.nodes[i].text for i in path[1:]]
    for parent, child in zip(path, path[1:]):
        state_text = states[parent].text
        node = tree.nodes[child]
        out.steps.append({"state": state_text, "tactic": node.text, "seconds": out.seconds.get(child, 0.0),
                          "logprob": node.logprob_mean, "tokens": len(node.token_ids)})
        for sibling in tree.nodes[parent].children:
            if tree.nodes[sibling].error is not None:
                out.pairs.append({"state": state_text, "chosen": node.text, "rejected": tree.nodes[sibling].text})
    out.states = {i: s.text for i, s in states.items()}
