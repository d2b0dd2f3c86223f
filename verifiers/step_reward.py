"""The symbolic step checker as a :class:`~search.protocols.StepChecker` and as a reward model.

- :class:`SymbolicChecker` reads each step's claims (:func:`verifiers.steps.read_claims`, in
  this process, pure string work) and decides each in a :class:`~verifiers.pool.WorkerPool`
  worker with a hard per-claim timeout (:func:`verifiers.steps.check_claim`, sympy). Sympy never
  runs in the calling process. Decisions are memoised by claim (and, for an equation, the
  earlier equations it is checked against), so re-scoring prefixes costs nothing.
- :class:`SymbolicReward` is a :class:`~search.protocols.RewardModel`: a step's score says
  what the check found (defaults: a false claim 0.0, only true claims 1.0, nothing
  checkable 0.5), and with ``carry_errors`` every step after a false one keeps the low score
  (the path is wrong from there on, as Math-Shepherd / OmegaPRM labels have it).
- :class:`CombinedReward` puts the checker over another reward model (a PRM) by one rule:
  ``veto`` -- a step the checker found false (or after one, with ``carry_errors``) gets
  ``false_score``; every other step the PRM's score; ``override`` -- a checked step gets the
  checker's score, an unchecked one the PRM's.

Why here and not in ``models/``: these reward models are not neural; they are a checker in
verifier workers, and ``models/`` may import only ``search.protocols``. ``verifiers/`` owns
the worker pool, the hostile-input rules and sympy; the combination rule needs only the
protocols, so it sits beside the checker it combines.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from search.protocols import (
    ClaimCheck,
    Problem,
    RewardModel,
    StepCheck,
    StepChecker,
    StepScores,
    score_starts,
    Usage,
)
from verifiers.pool import WorkerCrashed, WorkerPool, WorkerTimeout, shared_pool
from verifiers.steps import MAX_PREMISES, Claim, check_claim, numbers, read_claims, unsupported

CombineRule = Literal["veto", "override"]


class SymbolicCheckerConfig(BaseModel):
    """Settings of the symbolic step checker and the scores it gives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(2.0, gt=0, le=60, description="Hard limit per claim in seconds (a worker past it is replaced).")
    true_score: float = Field(1.0, ge=0, le=1, description="Score of a step whose claims are all true, in [0, 1].")
    false_score: float = Field(0.0, ge=0, le=1, description="Score of a step with a false claim, in [0, 1].")
    unchecked_score: float = Field(0.5, ge=0, le=1, description="Score of a step with nothing checkable, in [0, 1].")
    carry_errors: bool = Field(True, description="Steps after a false one score false_score too (the path is wrong from there).")
    cache_size: int = Field(100_000, ge=0, description="Memoised claim decisions (0 disables).")
    provenance: bool = Field(
        False, description="Also judge false a computation with an operand written neither in the question nor "
        "in an earlier step or claim (a number copied wrong). For tasks whose numbers all come from the question "
        "(chain_sum, basic_arithmetic); off by default: word problems bring their own constants (60 minutes, 100 %).")


def step_scores(checks: Sequence[StepCheck], config: SymbolicCheckerConfig) -> list[float | None]:
    """Per step, the checker's score, or None where it has nothing to say (an unchecked step
    with no false step before it). With ``carry_errors`` a false step makes every later one
    ``false_score``."""
    out: list[float | None] = []
    wrong = False
    for check in checks:
        wrong = (wrong and config.carry_errors) or check.status == "checked_false"
        if wrong:
            out.append(config.false_score)
        elif check.status == "checked_true":
            out.append(config.true_score)
        else:
            out.append(None)
    return out


class SymbolicChecker:
    """A :class:`~search.protocols.StepChecker` backed by sympy in verifier workers.

    Args:
        config: Timeouts, scores, cache size.
        pool: Worker pool for the claims; None: the process-wide shared pool.
    """

    def __init__(self, config: SymbolicCheckerConfig | None = None, pool: WorkerPool | None = None) -> None:
        self.config = config or SymbolicCheckerConfig()
        self._pool = pool
        self._decided: OrderedDict[tuple[Claim, tuple[Claim, ...]], tuple[str, str]] = OrderedDict()
        self._read: OrderedDict[str, tuple[Claim, ...]] = OrderedDict()
        self.worker_calls = 0
        """Claims sent to a worker so far."""
        self.timeouts = 0
        """Claims whose check ran past ``timeout_s``."""

    @property
    def pool(self) -> WorkerPool:
        return self._pool if self._pool is not None else shared_pool()

    def _claims(self, text: str) -> tuple[Claim, ...]:
        found = self._read.get(text)
        if found is None:
            found = tuple(read_claims(text))
            self._remember(self._read, text, found)
        return found

    def _remember(self, cache: OrderedDict, key, value) -> None:  # type: ignore[no-untyped-def]
        if self.config.cache_size <= 0:
            return
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.config.cache_size:
            cache.popitem(last=False)

    async def _decide(self, claim: Claim, premises: tuple[Claim, ...]) -> tuple[str, str]:
        key = (claim, premises)
        cached = self._decided.get(key)
        if cached is not None:
            return cached
        self.worker_calls += 1
        try:
            outcome = await self.pool.arun(check_claim, claim, premises, timeout=self.config.timeout_s)
        except WorkerTimeout:
            self.timeouts += 1
            outcome = ("timeout", f"check exceeded {self.config.timeout_s:g} s; worker replaced")
        except WorkerCrashed as err:
            outcome = ("unchecked", f"checker failed: {err}")
        self._remember(self._decided, key, outcome)
        return outcome

    @staticmethod
    def _provenance(problem: Problem, steps: Sequence[str], jobs: list[list[tuple[Claim, Any]]],
                    decided: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """``decided`` with every claim whose computation uses an unknown number made false:
        known are the question's numbers, earlier steps' and earlier claims' of the same step."""
        known = numbers(problem.question)
        out = list(decided)
        k = 0
        for text, row in zip(steps, jobs, strict=True):
            for claim, _ in row:
                missing = unsupported(claim, known)
                if missing and out[k][0] != "false":
                    out[k] = ("false", f"unsupported: {', '.join(missing)} is in neither the question nor an "
                                       "earlier step")
                known |= numbers(claim.text)
                k += 1
            known |= numbers(text)
        return out

    async def check(self, problem: Problem, steps: Sequence[str]) -> tuple[StepCheck, ...]:
        """One :class:`StepCheck` per step of one path. Equations are checked against the
        latest earlier equations in the same variable (the question's included)."""
        equations: dict[str, list[Claim]] = {}

        def note(claim: Claim) -> tuple[Claim, ...] | None:
            """The premises of an equation in one variable (and record it as the next one's)."""
            if claim.rel != "=" or len(claim.variables) != 1:
                return None
            (name,) = claim.variables
            earlier = equations.setdefault(name, [])
            premises = tuple(earlier[-MAX_PREMISES:])
            earlier.append(claim)
            return premises

        for claim in self._claims(problem.question):
            note(claim)
        jobs: list[list[tuple[Claim, tuple[Claim, ...] | None]]] = []
        for text in steps:
            jobs.append([(claim, note(claim)) for claim in self._claims(text)])
        flat = [(c, p) for row in jobs for c, p in row]
        decided = await asyncio.gather(*(self._decide(c, p or ()) for c, p in flat))
        if self.config.provenance:
            decided = self._provenance(problem, steps, jobs, decided)
        out: list[StepCheck] = []
        k = 0
        for row in jobs:
            claims = tuple(ClaimCheck(c.text, status, detail)  # type: ignore[arg-type]
                           for (c, _), (status, detail) in zip(row, decided[k: k + len(row)], strict=True))
            k += len(row)
            statuses = {c.status for c in claims}
            status = "checked_false" if "false" in statuses else "checked_true" if "true" in statuses else "unchecked"
            out.append(StepCheck(status, claims))  # type: ignore[arg-type]
        return tuple(out)


class SymbolicReward:
    """The symbolic checker as a :class:`~search.protocols.RewardModel` (and a
    :class:`~search.protocols.StepChecker`, through :meth:`check`).

    A step's score in [0, 1] says what the check found: ``false_score`` (a false claim, or
    after one with ``carry_errors``), ``true_score`` (only true claims), ``unchecked_score``
    (nothing checkable). With the defaults 0.0 / 1.0 / 0.5 the score names the status.
    """

    def __init__(self, checker: SymbolicChecker | None = None) -> None:
        self.checker = checker or SymbolicChecker()
        self.config = self.checker.config

    async def check(self, problem: Problem, steps: Sequence[str]) -> tuple[StepCheck, ...]:
        return await self.checker.check(problem, steps)

    async def score(self, problem: Problem, paths: Sequence[Sequence[str]],
                    first: Sequence[int] | None = None) -> StepScores:
        started = time.perf_counter()
        starts = score_starts(paths, first)
        checks = await asyncio.gather(*(self.checker.check(problem, path) for path in paths))
        rows = []
        for found, start in zip(checks, starts, strict=True):
            scores = step_scores(found, self.config)
            rows.append(tuple(self.config.unchecked_score if s is None else s for s in scores[start:]))
        return StepScores(tuple(rows), Usage(wall_seconds=time.perf_counter() - started))


class CombinedReward:
    """A reward model (a PRM) with the symbolic checker over it, by ``rule``:

    - ``veto``: a step the checker found false (or after one, with ``carry_errors``) scores
      ``false_score``; every other step the PRM's score. The checker can only lower scores.
    - ``override``: a step the checker decided scores the checker's score; an unchecked one
      the PRM's.

    Args:
        reward_model: The PRM (generative, pooling, self-evaluation).
        checker: The step checker (e.g. :class:`SymbolicChecker`).
        rule: ``veto`` or ``override``.
        config: Scores and ``carry_errors`` (default: the checker's config when it has one).
    """

    def __init__(self, reward_model: RewardModel, checker: StepChecker, rule: CombineRule = "veto",
                 config: SymbolicCheckerConfig | None = None) -> None:
        if rule not in ("veto", "override"):
            raise ValueError(f"rule must be 'veto' or 'override', got {rule!r}")
        self.reward_model = reward_model
        self.checker = checker
        self.rule = rule
        self.config = config or getattr(checker, "config", None) or SymbolicCheckerConfig()

    async def check(self, problem: Problem, steps: Sequence[str]) -> tuple[StepCheck, ...]:
        return await self.checker.check(problem, steps)

    async def score(self, problem: Problem, paths: Sequence[Sequence[str]],
                    first: Sequence[int] | None = None) -> StepScores:
        starts = score_starts(paths, first)
        neural, checks = await asyncio.gather(
            self.reward_model.score(problem, paths, first),
            asyncio.gather(*(self.checker.check(problem, path) for path in paths)),
        )
        rows = []
        for prm_row, found, start in zip(neural.scores, checks, starts, strict=True):
            symbolic = step_scores(found, self.config)[start:]
            rows.append(tuple(combine(p, s, self.rule, self.config) for p, s in zip(prm_row, symbolic, strict=True)))
        return StepScores(tuple(rows), neural.usage)


def combine(prm: float, symbolic: float | None, rule: CombineRule, config: SymbolicCheckerConfig) -> float:
    """One step's combined score (see :class:`CombinedReward`); ``symbolic`` is
    :func:`step_scores`' value (None: nothing to say)."""
    if symbolic is None:
        return prm
    if rule == "veto":
        return symbolic if symbolic == config.false_score and symbolic < prm else prm
    return symbolic
