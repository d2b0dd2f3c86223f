"""Scripted fakes for the prover: a proof environment given as a goal graph, and policies
that answer each goal with scripted tactics (spec 04)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence

from search.protocols import Generation, ProofCheck, ProofState, Sampling, StepProposal, TacticResult, TacticStatus, Theorem, Usage

OFFSET = 10


class CharTokenizer:
    eos_token_id = None

    def encode(self, text: str) -> list[int]:
        return [ord(c) + OFFSET for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i - OFFSET) for i in ids)

    def chat_prompt(self, user: str, system: str | None = None) -> list[int]:
        return self.encode(user)


def goal_of(prompt_text: str) -> str:
    m = re.search(r"Goal:\n(.*)\n\nTactic:", prompt_text, re.S)
    return m.group(1) if m else ""


class ScriptedPolicy:
    """Answers the goal in a tactic prompt with ``script[goal]``: (tactic, mean logprob) pairs."""

    def __init__(self, script: dict[str, list[tuple[str, float]]], tokenizer: CharTokenizer | None = None) -> None:
        self.script, self.tok = script, tokenizer or CharTokenizer()
        self.requests: list[str] = []

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        await asyncio.sleep(0)
        goal = goal_of(self.tok.decode(prefix))
        self.requests.append(goal)
        cands = self.script.get(goal, [("fail", -3.0)])[: sampling.n]
        props = tuple(StepProposal(t, tuple(self.tok.encode(t)), (lp,) * len(t), "stop") for t, lp in cands)
        return Generation(props, Usage(generated_tokens=sum(len(t) for t, _ in cands), calls=1))


class GraphEnv:
    """Goals are names; ``edges[(goal, tactic)]`` replaces the first goal by new goals (a tuple,
    () closes it) or is an error message. ``assert (h : G)`` puts goal G first and tags the
    current goal with ``+h``; the placeholder closes any goal (plan checks only)."""

    name = "graph"
    placeholder = "admit"

    def __init__(self, edges: dict[tuple[str, str], tuple[str, ...] | str], delay_s: float = 0.0) -> None:
        self.edges, self.delay_s = edges, delay_s
        self.applied: list[tuple[str, str]] = []
        self.runs = 0

    def start(self, theorem: Theorem) -> TacticResult:
        return TacticResult(TacticStatus.OPEN, ProofState(theorem.name, (theorem.statement,)))

    def _step(self, goals: tuple[str, ...], tactic: str, placeholder_ok: bool) -> tuple[str, ...] | str:
        if not goals:
            return "no goals"
        first, rest = goals[0], goals[1:]
        if tactic == self.placeholder:
            return rest if placeholder_ok else "refused: admit"
        m = re.fullmatch(r"assert \((\w+) : (.+)\)", tactic)
        if m:
            return (m.group(2), f"{first}+{m.group(1)}", *rest)
        out = self.edges.get((first, tactic))
        if out is None:
            return f"tactic {tactic!r} fails on {first!r}"
        return out if isinstance(out, str) else (*out, *rest)

    def apply(self, state: ProofState, tactic: str, timeout_s: float | None = None) -> TacticResult:
        time.sleep(self.delay_s)
        self.applied.append((state.goals[0] if state.goals else "", tactic))
        new = self._step(state.goals, tactic, False)
        if isinstance(new, str):
            return TacticResult(TacticStatus.ERROR, error=new, seconds=self.delay_s)
        s = ProofState(state.theorem, new, (*state.tactics, tactic))
        return TacticResult(TacticStatus.PROVED if not new else TacticStatus.OPEN, s, seconds=self.delay_s)

    def _run(self, theorem: Theorem, tactics: Sequence[str], placeholder_ok: bool) -> TacticResult:
        self.runs += 1
        goals: tuple[str, ...] = (theorem.statement,)
        for t in tactics:
            new = self._step(goals, t, placeholder_ok)
            if isinstance(new, str):
                return TacticResult(TacticStatus.ERROR, error=new)
            goals = new
        s = ProofState(theorem.name, goals, tuple(tactics))
        return TacticResult(TacticStatus.PROVED if not goals else TacticStatus.OPEN, s)

    def run(self, theorem: Theorem, tactics: Sequence[str]) -> TacticResult:
        return self._run(theorem, tactics, False)

    def assert_tactic(self, name: str, statement: str) -> str:
        return f"assert ({name} : {statement})"

    def check_plan(self, theorem: Theorem, subgoals: Sequence[tuple[str, str]]) -> TacticResult:
        tactics = [t for n, s in subgoals for t in (self.assert_tactic(n, s), self.placeholder)]
        return self._run(theorem, tactics, True)

    def check(self, theorem: Theorem, tactics: Sequence[str]) -> ProofCheck:
        r = self._run(theorem, tactics, False)
        return ProofCheck(r.status is TacticStatus.PROVED, r.error or "ok")


class ScriptedPlanner:
    """Returns the next plan of ``plans`` on each call (the last one again when they run out)."""

    def __init__(self, plans: list[list[tuple[str, str]]]) -> None:
        self.plans, self.calls = plans, []

    async def propose(self, theorem, proven, stuck):
        self.calls.append((list(proven), stuck))
        plan = self.plans[min(len(self.calls) - 1, len(self.plans) - 1)]
        return list(plan)
