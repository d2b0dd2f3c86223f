"""The planner (BFS-Prover-V2, spec 04 §4): intermediate subgoals, checked with placeholders.

A planner proposes subgoals ``(name, statement)``; :func:`make_plan` type-checks them with
the environment's placeholder closing each one (``ProofEnv.check_plan``) and asks again, up to
``retries`` times, when the check fails. Replanning passes the proven subgoals (kept verbatim,
in order) and the stuck one; the new subgoals go after the proven ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Protocol

from search.protocols import Policy, ProofEnv, Sampling, TacticStatus, Theorem, Tokenizer
from search.prover.prompts import parse_plan, plan_prompt

Subgoal = tuple[str, str]


class Planner(Protocol):
    async def propose(self, theorem: Theorem, proven: Sequence[Subgoal], stuck: Subgoal | None) -> list[Subgoal]:
        """New subgoals to go after ``proven`` (all of them when nothing is proven)."""
        ...


class PolicyPlanner:
    """The policy (or a separate planner endpoint) writes the plan; its cost is metered apart
    from the tactic-generation budget (``calls``, ``generated_tokens``)."""

    def __init__(self, policy: Policy, tokenizer: Tokenizer, env_name: str, *, temperature: float = 1.0,
                 max_tokens: int = 160) -> None:
        self.policy, self.tokenizer, self.env_name = policy, tokenizer, env_name
        self.temperature, self.max_tokens = temperature, max_tokens
        self.calls = self.generated_tokens = 0
        self.seconds = 0.0
        self.texts: list[str] = []

    async def propose(self, theorem: Theorem, proven: Sequence[Subgoal], stuck: Subgoal | None) -> list[Subgoal]:
        prompt = self.tokenizer.chat_prompt(plan_prompt(self.env_name, theorem.statement, list(proven), stuck))
        start = time.perf_counter()
        generation = await self.policy.propose(prompt, Sampling(n=1, temperature=self.temperature,
                                                                max_tokens=self.max_tokens, logprobs=None))
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.generated_tokens += sum(len(p.token_ids) for p in generation.proposals)
        text = generation.proposals[0].text if generation.proposals else ""
        self.texts.append(text)
        known = {n for n, _ in proven}
        return [(n, s) for n, s in parse_plan(text) if n not in known]


async def make_plan(theorem: Theorem, env: ProofEnv, planner: Planner, retries: int,
                    proven: Sequence[Subgoal] = (), stuck: Subgoal | None = None) -> tuple[list[Subgoal], dict[str, Any]]:
    """A checked plan (``proven`` + new subgoals) and its log: every try's subgoals and check
    result. When no try passes, the plan is ``proven`` alone (the main goal comes next)."""
    tries: list[dict[str, Any]] = []
    for _ in range(retries + 1):
        new = await planner.propose(theorem, proven, stuck)
        if not new:
            tries.append({"subgoals": [], "ok": False, "error": "no subgoals in the reply"})
            continue
        check = await asyncio.to_thread(env.check_plan, theorem, [*proven, *new])
        ok = check.status is not TacticStatus.ERROR
        tries.append({"subgoals": [list(s) for s in new], "ok": ok, "error": check.error})
        if ok:
            return [*proven, *new], {"tries": tries, "ok": True, "stuck": list(stuck) if stuck else None}
    return list(proven), {"tries": tries, "ok": False, "stuck": list(stuck) if stuck else None}
