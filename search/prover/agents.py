"""Multi-agent proving with a shared proof cache (BFS-Prover-V2, spec 04 §4).

Optionally a planner writes subgoals first (checked with placeholders). Then ``num_agents``
agents run concurrently, all sending their tactic requests to the same (bounded, batched)
policy. Each agent loops: read the theorem's cache entry; fast-forward to its progress (the
cached proofs of the subgoals proven so far, by any agent, replayed as a prefix); state the
first unproven subgoal; run a best-first attempt on it (``search.prover.bfs``) until that
subgoal is closed (one goal fewer) or, after the plan, the theorem is proved; send the proof
to the cache, which accepts it only for the current subgoal after a replay. An attempt stops
early when the cache's progress moves (another agent proved the subgoal). Repeated failures
on one subgoal trigger a replan. Without sharing each agent has a cache of its own.

The theorem's budget (``max_calls`` tactic-generation requests) is shared by all agents, so
one agent and four agents spend the same.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import Field

from search.algorithms.common import ConfigBase
from search.protocols import Policy, ProofEnv, TacticStatus, Theorem, Tokenizer
from search.budget import Budget, Meter
from search.prover.bfs import Attempt, ProverConfig, best_first_attempt
from search.prover.cache import CacheEntry, LocalProofCache, ProofCache, StepProof
from search.prover.planner import Planner, make_plan
from search.trace import SearchResult
from search.tree import Node, Tree


class BfsProverConfig(ConfigBase):
    """A theorem's whole search: agents, sharing, planner, budget."""

    algorithm: Literal["bfs_prover"] = Field("bfs_prover", description="Discriminator.")
    num_agents: int = Field(1, ge=1, le=256, description="Prover agents running concurrently.")
    share_cache: bool = Field(True, description="Agents share one proof cache (off: one cache each).")
    planner: bool = Field(False, description="Plan subgoals first (needs a planner).")
    plan_retries: int = Field(3, ge=0, description="Plan regenerations when the check fails (V2: 3).")
    max_replans: int = Field(1, ge=0, description="Replans per theorem when a subgoal is stuck.")
    stuck_attempts: int = Field(2, ge=1, description="Failed attempts on one subgoal before replanning.")
    max_calls: int = Field(32, ge=1, description="Tactic-generation requests per theorem, all agents together.")
    max_attempts: int = Field(64, ge=1, description="Attempts per agent.")
    seed: int | None = Field(None, description="Base sampling seed; None: unseeded.")
    prover: ProverConfig = Field(default_factory=ProverConfig, description="Each agent's best-first search.")


@dataclasses.dataclass
class ProveOutcome:
    """Everything one theorem's search did (``to_result`` makes its trace)."""

    theorem: Theorem
    proved: bool
    proof: list[str] | None
    check: str
    entry: CacheEntry
    attempts: list[dict[str, Any]]
    trees: list[Attempt]
    meter: Meter
    plans: list[dict[str, Any]]
    cache_hits: int
    wall_seconds: float
    config: dict[str, Any]

    def to_result(self) -> SearchResult:
        """One tree for the trace: under the root, each attempt's tree hangs from a node whose
        text is the fast-forwarded prefix it started from (spec 04 §6 in ``extra``)."""
        tree = Tree(())
        states: dict[str, str] = {}
        path: list[int] = []
        searched = [r for r in self.attempts if "nodes" in r]  # attempts that ran a search (have a tree)
        for attempt, record in zip(self.trees, searched, strict=True):
            top = _graft(tree, attempt, record)
            record["node_offset"] = top
            for i, text in attempt.states.items():
                states[str(top + i)] = text
            if attempt.status == "proved":
                goal = next(n.id for n in attempt.tree.nodes if n.terminal)
                path = [0] + [top + i for i in attempt.tree.path(goal)]
        usage = dataclasses.replace(self.meter.usage, wall_seconds=self.wall_seconds)
        extra = {"status": "proved" if self.proved else "unproved", "proof": self.proof, "validation": self.check,
                 "attempts": self.attempts, "plans": self.plans, "cache": self.entry.to_dict(),
                 "cache_hits": self.cache_hits, "meter": meter_record(self.meter), "states": states,
                 "theorem": {"name": self.theorem.name, "statement": self.theorem.statement},
                 "nodes_total": len(tree), "nodes_explored": sum(len(a.expansion_order) for a in self.trees)}
        answer = "\n".join(self.proof) if self.proof is not None else None
        return SearchResult(answer, path, tree, usage, "bfs_prover", extra, dict(self.config))


def meter_record(meter: Meter) -> dict[str, float]:
    """A theorem's spending as its trace and result row record it (spec 04 §6): policy
    requests and tokens, tactic runs, seconds waiting on generation and on the environment."""
    u = meter.usage
    return {"calls": u.calls, "generated_tokens": u.generated_tokens, "prompt_tokens": u.prompt_tokens,
            "tactic_calls": meter.tool_calls, "generation_seconds": round(meter.model_wait_seconds, 3),
            "env_seconds": round(meter.tool_seconds, 3)}


async def gather_or_cancel(coros: Sequence[Any]) -> list[Any]:
    """Runs ``coros`` concurrently; the first exception (an ``EngineFault``, say) cancels the
    others, is waited out, and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in tasks:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()
    return [t.result() for t in tasks]


def _graft(tree: Tree, attempt: Attempt, record: dict[str, Any]) -> int:
    """Copies an attempt's tree under a new child of the root; returns that child's id."""
    top = len(tree)
    tree.nodes.append(Node(id=top, parent=0, depth=1, text="\n".join(record["prefix"]), terminal=False))
    tree.nodes[0].children.append(top)
    for node in attempt.tree.nodes[1:]:
        new = dataclasses.replace(node, id=top + node.id, parent=top + node.parent, depth=node.depth + 1,
                                  children=[top + c for c in node.children], scores=dict(node.scores))
        tree.nodes.append(new)
    tree.nodes[top].children = [top + c for c in attempt.tree.nodes[0].children]
    return top


@dataclasses.dataclass
class _Run:
    theorem: Theorem
    env: ProofEnv
    policies: list[Policy]
    tokenizer: Tokenizer
    config: BfsProverConfig
    planner: Planner | None
    meter: Meter
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    trees: list[Attempt] = dataclasses.field(default_factory=list)
    plans: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    replans: int = 0
    hits: int = 0
    winner: ProofCache | None = None


async def prove_theorem(theorem: Theorem, env: ProofEnv, policy: Policy | Sequence[Policy], tokenizer: Tokenizer,
                        config: BfsProverConfig, *, cache_factory: Callable[[], ProofCache] | None = None,
                        planner: Planner | None = None) -> ProveOutcome:
    """Proves ``theorem`` with ``config.num_agents`` agents (see the module docstring).

    ``policy``: one engine for all agents, or several (agent k uses ``policy[k % len]``, as
    V2's run script spreads prover workers over its tactic-generator engines).
    ``cache_factory`` makes a cache (default: in-process over ``env``); it is called once
    when agents share, once per agent otherwise.
    """
    start = time.perf_counter()
    make_cache = cache_factory or (lambda: LocalProofCache(env))
    policies = list(policy) if isinstance(policy, Sequence) else [policy]
    run = _Run(theorem, env, policies, tokenizer, config, planner, Meter(Budget(max_calls=config.max_calls)))
    plan: list[tuple[str, str]] = []
    if config.planner:
        if planner is None:
            raise ValueError("config.planner is on but no planner was given")
        plan, log = await make_plan(theorem, env, planner, config.plan_retries)
        run.plans.append(log)
    shared = make_cache() if config.share_cache else None
    caches = [shared or make_cache() for _ in range(config.num_agents)]
    for cache in {id(c): c for c in caches}.values():
        await cache.register(theorem, plan)
    await gather_or_cancel([_agent(run, k, caches[k]) for k in range(config.num_agents)])
    entry = await (run.winner or caches[0]).entry(theorem.name)
    return ProveOutcome(theorem, entry.final is not None, entry.final, entry.check, entry, run.attempts, run.trees,
                        run.meter, run.plans, run.hits, time.perf_counter() - start, config.model_dump())


async def _agent(run: _Run, k: int, cache: ProofCache) -> None:
    name, cfg, env = run.theorem.name, run.config, run.env
    local, fails = 0, {}
    for attempt_no in range(cfg.max_attempts):
        if run.done.is_set() or run.meter.exhausted():
            return
        entry = await cache.entry(name)
        if entry.final is not None:
            run.winner = run.winner or cache
            run.done.set()
            return
        p = entry.progress
        if p > local:
            run.hits += sum(1 for proof in entry.proofs[local:p] if proof.agent != k)
        local = p
        target = entry.plan[p] if p < len(entry.plan) else None
        prefix = [t for (n, s), proof in zip(entry.plan[:p], entry.proofs[:p]) for t in (env.assert_tactic(n, s), *proof.tactics)]
        script = prefix + ([env.assert_tactic(*target)] if target else [])
        begin = await asyncio.to_thread(env.run, run.theorem, script)
        run.meter.tool_seconds += begin.seconds  # a replay, not a tactic call
        if begin.status is not TacticStatus.OPEN or begin.state is None:
            run.attempts.append({"agent": k, "step": p, "status": "prefix_failed", "prefix": script, "error": begin.error})
            return
        goals = len(begin.state.goals)

        def reached(state, goals=goals, target=target) -> bool:
            return len(state.goals) < goals if target is not None else state.proved

        async def preempted(p=p) -> bool:
            return run.done.is_set() or await cache.progress(name) != p

        seed = None if cfg.seed is None else cfg.seed + 7919 * k + 104729 * attempt_no
        policy = run.policies[k % len(run.policies)]
        attempt = await best_first_attempt(begin.state, env, policy, run.tokenizer, cfg.prover, run.meter,
                                           goal_reached=reached, preempted=preempted,
                                           statement=run.theorem.statement, seed=seed)
        record: dict[str, Any] = {"agent": k, "step": p, "subgoal": list(target) if target else None,
                                  "status": attempt.status, "prefix": script, "root": begin.state.text,
                                  "expanded": len(attempt.expansion_order), "nodes": len(attempt.tree),
                                  "tactics": attempt.tactics, "steps": attempt.steps, "pairs": attempt.pairs}
        run.trees.append(attempt)
        run.attempts.append(record)
        if attempt.status == "proved":
            update = await cache.update(name, p, StepProof(attempt.tactics, attempt.steps, attempt.pairs, agent=k))
            record["update"] = {"accepted": update.accepted, "reason": update.reason}
            if update.accepted and update.finished:
                run.winner = cache
                run.done.set()
        elif attempt.status == "exhausted":
            fails[p] = fails.get(p, 0) + 1
            if (run.planner is not None and cfg.planner and fails[p] >= cfg.stuck_attempts
                    and run.replans < cfg.max_replans):
                run.replans += 1
                fails[p] = 0
                plan, log = await make_plan(run.theorem, env, run.planner, cfg.plan_retries,
                                            proven=entry.plan[:p], stuck=target)
                log["applied"] = len(plan) > p and await cache.replan(name, p, plan[p:])
                run.plans.append(log)
        elif attempt.status == "budget":
            return
