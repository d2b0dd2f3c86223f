"""The shared proof cache (BFS-Prover-V2's ``ProgressCache``, spec 04 §4).

Per theorem: the plan (subgoals), the progress index (subgoals proven so far, in order), each
proven subgoal's proof trace with per-tactic time and logprob and its preference pairs, and
the final proof. An update is accepted only for the current subgoal and only after a replay
of every cached proof before it plus the new one type-checks and closes that subgoal; the
final proof is the concatenation, replayed in full by the environment's final check, and the
entry is reset when that fails.

:class:`CacheCore` is the logic (blocking; it owns an environment). Agents talk to it through
the async :class:`ProofCache` interface: :class:`LocalProofCache` here (in-process, default)
and ``ponder.ray_cache.RayProofCache`` (the same core in a Ray actor).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from search.protocols import ProofEnv, TacticStatus, Theorem


@dataclasses.dataclass
class StepProof:
    """One subgoal's proof as an agent found it."""

    tactics: list[str]
    steps: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    pairs: list[dict[str, str]] = dataclasses.field(default_factory=list)
    agent: int = 0


@dataclasses.dataclass
class CacheEntry:
    """A theorem's cache entry (a copy when read through :class:`ProofCache`)."""

    plan: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    progress: int = 0
    proofs: list[StepProof] = dataclasses.field(default_factory=list)
    final: list[str] | None = None
    check: str = ""
    resets: int = 0
    rejected: int = 0
    replans: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class UpdateResult:
    accepted: bool
    reason: str
    progress: int
    finished: bool = False


class CacheCore:
    """The cache's state and rules, behind one lock (see the module docstring)."""

    def __init__(self, env: ProofEnv) -> None:
        self.env = env
        self.entries: dict[str, CacheEntry] = {}
        self.theorems: dict[str, Theorem] = {}
        self._lock = threading.Lock()

    def register(self, theorem: Theorem, plan: Sequence[tuple[str, str]]) -> CacheEntry:
        """Creates the theorem's entry with ``plan`` (the first registration wins)."""
        with self._lock:
            self.theorems.setdefault(theorem.name, theorem)
            entry = self.entries.setdefault(theorem.name, CacheEntry(plan=[tuple(s) for s in plan]))
            return _copy(entry)

    def entry(self, name: str) -> CacheEntry:
        with self._lock:
            return _copy(self.entries[name])

    def progress(self, name: str) -> int:
        with self._lock:
            return self.entries[name].progress

    def prefix(self, name: str, upto: int) -> list[str]:
        """The tactics that state and prove subgoals ``0..upto-1`` of theorem ``name``."""
        with self._lock:
            return self._prefix(self.entries[name], upto)

    def _prefix(self, entry: CacheEntry, upto: int) -> list[str]:
        out: list[str] = []
        for (name, statement), proof in zip(entry.plan[:upto], entry.proofs[:upto]):
            out += [self.env.assert_tactic(name, statement), *proof.tactics]
        return out

    def update(self, name: str, step: int, proof: StepProof) -> UpdateResult:
        """Accepts ``proof`` for subgoal ``step`` (``len(plan)``: the main goal) when ``step`` is
        the current progress and the replay checks; the main goal's proof must also pass the
        final check, else the entry is reset."""
        with self._lock:
            entry, theorem = self.entries[name], self.theorems[name]
            if entry.final is not None:
                return UpdateResult(False, "already proved", entry.progress, True)
            if step != entry.progress:
                entry.rejected += 1
                return UpdateResult(False, f"stale: subgoal {step} but progress is {entry.progress}", entry.progress)
            before = self._prefix(entry, step)
            if step < len(entry.plan):
                base = self.env.run(theorem, before)
                replay = self.env.run(theorem, [*before, self.env.assert_tactic(*entry.plan[step]), *proof.tactics])
                closed = (base.state is not None and replay.status is not TacticStatus.ERROR
                          and replay.state is not None and len(replay.state.goals) == len(base.state.goals))
                if not closed:
                    entry.rejected += 1
                    return UpdateResult(False, f"replay failed: {replay.error or 'subgoal not closed'}", entry.progress)
                entry.proofs = entry.proofs[:step] + [proof]
                entry.progress = step + 1
                return UpdateResult(True, "subgoal proven", entry.progress)
            full = [*before, *proof.tactics]
            check = self.env.check(theorem, full)
            if not check.accepted:
                entry.rejected += 1
                entry.resets += 1
                entry.progress, entry.proofs = 0, []
                return UpdateResult(False, f"final check failed, entry reset: {check.detail}", 0)
            entry.proofs = entry.proofs[:step] + [proof]
            entry.progress, entry.final, entry.check = step + 1, full, check.detail
            return UpdateResult(True, "proved", entry.progress, True)

    def replan(self, name: str, progress: int, new_subgoals: Sequence[tuple[str, str]]) -> bool:
        """Keeps the proven subgoals and appends ``new_subgoals`` after them (spec 04 §4
        replanning); refused when progress moved meanwhile."""
        with self._lock:
            entry = self.entries[name]
            if entry.progress != progress or entry.final is not None:
                return False
            entry.plan = entry.plan[:progress] + [tuple(s) for s in new_subgoals]
            entry.replans += 1
            return True


def _copy(entry: CacheEntry) -> CacheEntry:
    return CacheEntry(**{**dataclasses.asdict(entry), "proofs": [StepProof(**dataclasses.asdict(p)) for p in entry.proofs],
                         "plan": [tuple(s) for s in entry.plan]})


class ProofCache(Protocol):
    """What agents call (every method awaitable, so a remote cache fits)."""

    async def register(self, theorem: Theorem, plan: Sequence[tuple[str, str]]) -> CacheEntry: ...

    async def entry(self, name: str) -> CacheEntry: ...

    async def progress(self, name: str) -> int: ...

    async def prefix(self, name: str, upto: int) -> list[str]: ...

    async def update(self, name: str, step: int, proof: StepProof) -> UpdateResult: ...

    async def replan(self, name: str, progress: int, new_subgoals: Sequence[tuple[str, str]]) -> bool: ...


class LocalProofCache:
    """The in-process cache: a :class:`CacheCore`, replays in a thread so the loop runs on."""

    def __init__(self, env: ProofEnv) -> None:
        self.core = CacheCore(env)

    async def register(self, theorem: Theorem, plan: Sequence[tuple[str, str]]) -> CacheEntry:
        return self.core.register(theorem, plan)

    async def entry(self, name: str) -> CacheEntry:
        return self.core.entry(name)

    async def progress(self, name: str) -> int:
        return self.core.progress(name)

    async def prefix(self, name: str, upto: int) -> list[str]:
        return self.core.prefix(name, upto)

    async def update(self, name: str, step: int, proof: StepProof) -> UpdateResult:
        return await asyncio.to_thread(self.core.update, name, step, proof)

    async def replan(self, name: str, progress: int, new_subgoals: Sequence[tuple[str, str]]) -> bool:
        return self.core.replan(name, progress, new_subgoals)
