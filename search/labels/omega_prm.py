"""OmegaPRM process labels: binary search for the first error, alone or in a rollout tree
(spec 08 §3, §4).

A state is a prefix of a solution cut at a step boundary: root prefix + whole steps. A
wrong solution is a wrong end leaf of the search tree (its steps are the tree path) or a
wrong rollout of a state (its steps, ``ctx.steps.split``, follow the state's).

- Screening (§3.1): the root gets ``screen_rollouts`` completions; a question whose
  completions are all correct or all wrong yields no labels (``LabelStats.screened_out``).
- Binary search (§3.2): low = a known positive state, high = the complete wrong solution
  (MC := 0); the step boundary in the middle is probed with k completions; MC > 0 moves
  low, else high; it stops when one step separates them. Steps are the unit: a span of one
  step is never split further, whatever its length, and the spec's token threshold (mean
  solution length / 16) is not applied. K steps cost at most ceil(log2 K) probes.
- Tree (§3.3): a pool of wrong rollouts of states with 0 < MC < 1 (the screening rollouts
  of the root, the tree's wrong end leaves as the root's, and the rollouts of every state a
  search probes); each iteration binary-searches the rollout with the largest
  Q(s, r) + U(s).

Labels (§3.4, §4): each probed positive state labels the span from the previous low to
it, True with value MC; the first-error span (low -> high) is False with value 0; steps
after it are dropped or labelled False one by one (``after_first_error``, recorded in
``StepLabel.convention``). A span is one ``StepLabel`` (``step`` = its steps' text,
``extra["span"]`` = [first, end) step indices, ``depth`` = first + 1). Each state is
labelled at most once (the first label found wins).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Awaitable
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from search.aggregate import end_leaves
from search.labels.inputs import LabelInputs
from search.labels.records import StepLabel
from search.labels.rollouts import Estimate, LabelStats, Rollouts, gather_all
from search.occupancy import Lease
from search.protocols import ConfigError, VerdictStatus

T = TypeVar("T")

log = logging.getLogger(__name__)

WRONG = frozenset({VerdictStatus.INCORRECT.value, VerdictStatus.UNPARSEABLE.value})
"""Verdicts that make a solution wrong; a timed-out check is neither right nor wrong and
never starts a search."""


class OmegaPrmConfig(BaseModel):
    """OmegaPRM: screening, then binary search for the first error (alone or in a rollout tree)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: Literal["omega_prm"] = Field("omega_prm", description="Discriminator.")
    num_rollouts: int = Field(8, ge=1, description="Completions k per probed prefix (OmegaPRM k = 8).")
    screen_rollouts: int = Field(32, ge=1, description="Completions from the root to screen the question (32).")
    mode: Literal["binary_search", "tree"] = Field(
        "binary_search",
        description="binary_search: one search per wrong end leaf of the tree; tree: Q + U selection over a "
        "pool of wrong rollouts (OmegaPRM full).",
    )
    iterations: int = Field(100, ge=1, description="Selection iterations per question (tree mode; paper 100).")
    alpha: float = Field(0.5, gt=0.0, le=1.0, description="Q = alpha^(1 - MC(s)) * ...: favours usually-right states.")
    beta: float = Field(0.9, gt=0.0, le=1.0, description="Q = ... * beta^(len(r) / L): favours short rollouts.")
    length_scale: float = Field(500.0, gt=0.0, description="L, tokens, in beta's exponent.")
    c_puct: float = Field(0.125, ge=0.0, description="U(s) = c_puct * sqrt(sum_i N(s_i)) / (1 + N(s)).")
    after_first_error: Literal["drop", "zero"] = Field(
        "drop", description="Steps after the first error: dropped, or labelled False with value 0 (PRM800K)."
    )
    max_rollout_tokens: int | None = Field(
        None, ge=1, description="Token limit of one completion; None = what the remaining depth allows."
    )
    adaptive_parallel: bool = Field(
        False, description="While the engine is under-filled (sequences in flight below model.target_in_flight), a "
        "binary search also starts the estimates of its two possible next probes with the current one; the one it "
        "takes is then a cache hit (the same seeded samples, so the same labels), the other costs rollout tokens "
        "for nothing. Off by default: label compute stays as specified (stats: speculative).")


def selection_score(
    mc: float, rollout_tokens: int, visits: int, total_visits: int, config: OmegaPrmConfig
) -> float:
    """Q(s, r) + U(s) of a wrong rollout r of state s (spec 08 §3.3).

    Args:
        mc: MC(s) in [0, 1].
        rollout_tokens: len(r), tokens generated after s.
        visits: N(s).
        total_visits: Sum of N over every state of the tree.
        config: alpha, beta, L, c_puct.
    """
    q = config.alpha ** (1.0 - mc) * config.beta ** (rollout_tokens / config.length_scale)
    u = config.c_puct * math.sqrt(total_visits) / (1 + visits)
    return q + u


@dataclasses.dataclass(frozen=True)
class _Piece:
    """One step of a solution: text, token ids, and its tree node (None inside a rollout)."""

    text: str
    token_ids: tuple[int, ...]
    node_id: int | None = None


@dataclasses.dataclass(frozen=True)
class _Solution:
    """A complete wrong solution: its steps, verdict status, and where it came from."""

    pieces: tuple[_Piece, ...]
    verdict: str
    source: Literal["tree_leaf", "rollout"]


@dataclasses.dataclass
class _State:
    """A probed prefix: its steps, MC estimate and visit count N(s)."""

    pieces: tuple[_Piece, ...]
    estimate: Estimate
    visits: int = 0


@dataclasses.dataclass
class _Candidate:
    """A wrong rollout r of a state s, waiting in the tree-mode pool."""

    state: tuple[int, ...]
    solution: _Solution
    tokens: int


Labelled = list[tuple[tuple[int, ...], StepLabel]]
"""Labels with the key of the state each one ends at (for dedupe)."""


async def _leased(lease: Lease, work: Awaitable[T]) -> T:
    """``work`` as a task holding ``lease`` until its first request reaches the gate."""
    lease.bind()
    try:
        return await work
    finally:
        lease.settle()


class _Search:
    """One question's OmegaPRM run: states, probes, labels."""

    def __init__(self, inputs: LabelInputs, config: OmegaPrmConfig, rollouts: Rollouts, stats: LabelStats) -> None:
        self.inputs, self.config, self.rollouts, self.stats = inputs, config, rollouts, stats
        self.ctx = inputs.ctx
        self.root_prefix = self.ctx.tree.root_prefix
        self.states: dict[tuple[int, ...], _State] = {}
        self.labels: dict[tuple[int, ...], StepLabel] = {}

    def key(self, pieces: tuple[_Piece, ...]) -> tuple[int, ...]:
        """The state's prompt token ids: root prefix + its steps' tokens."""
        return self.root_prefix + tuple(t for p in pieces for t in p.token_ids)

    async def probe(self, pieces: tuple[_Piece, ...], k: int) -> tuple[Estimate, bool]:
        """MC of a state with ``k`` completions; returns it and whether the state is new."""
        self.stats.estimates += 1
        key = self.key(pieces)
        text = "".join(p.text for p in pieces)
        estimate = await self.rollouts.estimate(key, text, k, depth=len(pieces))
        new = key not in self.states and estimate.error is None and estimate.n > 0
        if new:
            self.states[key] = _State(pieces, estimate)
        return estimate, new

    def solutions_of(self, state: _State) -> list[_Candidate]:
        """The wrong rollouts of a state with 0 < MC < 1, as complete solutions."""
        est = state.estimate
        if not 0.0 < est.mc < 1.0:
            return []
        room = max(self.ctx.steps.max_depth - len(state.pieces), 1)
        out = []
        for completion, status in zip(est.completions, est.verdicts, strict=True):
            if status in WRONG and completion.token_ids:
                steps = tuple(_Piece(p.text, tuple(p.token_ids)) for p in self.ctx.steps.split(completion, room))
                out.append(_Candidate(self.key(state.pieces), _Solution(state.pieces + steps, status, "rollout"),
                                      len(completion.token_ids)))
        return out

    def wrong_leaves(self) -> list[_Candidate]:
        """The tree's wrong end leaves, as complete solutions from the root."""
        tree, out = self.ctx.tree, []
        for leaf in end_leaves(tree):
            verdict = self.inputs.verdicts.get(leaf)
            if verdict is not None and verdict.status.value in WRONG:
                nodes = [tree.nodes[i] for i in tree.path(leaf)[1:]]
                pieces = tuple(_Piece(n.text, n.token_ids, n.id) for n in nodes)
                out.append(_Candidate(self.root_prefix, _Solution(pieces, verdict.status.value, "tree_leaf"),
                                      sum(len(n.token_ids) for n in nodes)))
        return out

    async def binary_search(self, solution: _Solution, lo: int) -> tuple[Labelled, list[_State]]:
        """Finds the first error of a wrong solution whose first ``lo`` steps are a positive
        state (spec 08 §3.2); returns its labels and the states it created."""
        self.stats.searches += 1
        pieces, k = solution.pieces, self.config.num_rollouts
        hi, hi_estimate = len(pieces), None
        labels: Labelled = []
        created: list[_State] = []
        ahead: list[asyncio.Future[Estimate]] = []
        try:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                occupancy = self.ctx.occupancy if self.config.adaptive_parallel else None
                if occupancy is not None and self.rollouts.cached(self.key(pieces[:mid])) < k:
                    # this probe runs anyway: counted until sent, so the grants below see it
                    probe = asyncio.ensure_future(_leased(occupancy.reserve(k), self.probe(pieces[:mid], k)))
                    ahead += self.speculate(pieces, (lo, mid), (mid, hi), k=k)
                    estimate, new = await probe
                else:
                    estimate, new = await self.probe(pieces[:mid], k)
                if estimate.error is not None or estimate.n == 0:
                    self.stats.skip(estimate.error or "no usable completion")
                    return labels, created
                if new:
                    created.append(self.states[self.key(pieces[:mid])])
                if estimate.mc > 0:
                    labels.append(self.span_label(solution, lo, mid, estimate))
                    lo = mid
                else:
                    hi, hi_estimate = mid, estimate
        finally:  # the speculative estimates not taken: no longer needed
            for task in ahead:
                task.cancel()
            if ahead:
                await asyncio.gather(*ahead, return_exceptions=True)
        labels.append(self.span_label(solution, lo, hi, hi_estimate))
        if self.config.after_first_error == "zero":
            labels.extend(self.span_label(solution, i, i + 1, None) for i in range(hi, len(pieces)))
        return labels, created

    def speculate(self, pieces: tuple[_Piece, ...], *spans: tuple[int, int], k: int) -> list[asyncio.Future[Estimate]]:
        """Starts the estimate of each span's midpoint (a bisection's possible next probe) on a
        grant of ``k`` sequences, while the engine is under-filled; cached like any estimate."""
        occupancy = self.ctx.occupancy
        started = []
        for a, b in spans:
            key = self.key(pieces[:(a + b) // 2])
            if b - a <= 1 or occupancy is None or self.rollouts.cached(key) >= k:
                continue
            lease = occupancy.grant(k)
            if lease is None:
                break
            self.stats.speculative += 1

            async def estimate(cut: int = (a + b) // 2, lease: Lease = lease) -> Estimate:
                lease.bind()
                try:
                    text = "".join(p.text for p in pieces[:cut])
                    return await self.rollouts.estimate(self.key(pieces[:cut]), text, k, depth=cut)
                finally:
                    lease.settle()

            started.append(asyncio.ensure_future(estimate()))
        return started

    def span_label(
        self, solution: _Solution, start: int, end: int, estimate: Estimate | None
    ) -> tuple[tuple[int, ...], StepLabel]:
        """The label of steps [start, end) of a solution: from the estimate of the state they
        end at, or (None) a zero label (the complete wrong solution, or a step after the
        first error)."""
        pieces = solution.pieces
        span = pieces[start:end]
        complete = end == len(pieces)
        if estimate is not None:
            value, rollouts, correct, verdicts = estimate.mc, estimate.n, estimate.correct, list(estimate.verdicts)
        else:
            value, rollouts, correct = 0.0, 0, 0
            verdicts = [solution.verdict] if complete else []
        label = StepLabel(
            problem_id=self.ctx.problem.id,
            question=self.ctx.problem.question,
            generator="omega_prm",
            mode=self.config.mode,
            node_id=span[-1].node_id,
            prefix=[p.text for p in pieces[:start]],
            step="".join(p.text for p in span),
            step_tokens=sum(len(p.token_ids) for p in span),
            depth=start + 1,
            value=value,
            label=value > 0,
            rollouts=rollouts,
            correct=correct,
            verdicts=verdicts,
            model=self.inputs.model,
            convention=f"after_first_error={self.config.after_first_error}",
            extra={"span": [start, end], "source": solution.source, "complete_solution": complete and estimate is None,
                   "seeds": sorted({s for s in estimate.seeds if s is not None}) if estimate else []},
        )
        return self.key(pieces[:end]), label

    def keep(self, labelled: Labelled) -> None:
        """Adds labels, each state's first label only."""
        for key, label in labelled:
            self.labels.setdefault(key, label)

    async def run_tree(self, root: _State) -> None:
        """Q + U selection over the pool of wrong rollouts, ``iterations`` at most (§3.3)."""
        pool: list[_Candidate] = []
        seen: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()

        def add(candidates: list[_Candidate]) -> None:
            for c in candidates:
                ident = (c.state, self.key(c.solution.pieces))
                if ident not in seen:
                    seen.add(ident)
                    pool.append(c)

        add(self.solutions_of(root))
        add(self.wrong_leaves())
        for _ in range(self.config.iterations):
            if not pool:
                break
            total = sum(s.visits for s in self.states.values())

            def score(c: _Candidate, total: int = total) -> float:
                s = self.states[c.state]
                return selection_score(s.estimate.mc, c.tokens, s.visits, total, self.config)

            best = max(pool, key=score)  # ties: the earliest in the pool
            pool.remove(best)
            state = self.states[best.state]
            state.visits += 1
            self.stats.iterations += 1
            labelled, created = await self.binary_search(best.solution, len(state.pieces))
            self.keep(labelled)
            for new in created:
                add(self.solutions_of(new))


async def omega_prm_labels(
    inputs: LabelInputs, config: OmegaPrmConfig, *, stats: LabelStats | None = None
) -> list[StepLabel]:
    """OmegaPRM labels of one question (spec 08 §3, §4).

    Args:
        inputs: The finished search, its end leaves' verdicts and the shared rollouts
            (created from ``config.max_rollout_tokens`` when None).
        config: The generator's settings.
        stats: Filled with what was done; ``stats.screened_out`` says why a question gave
            no labels (``all_correct``, ``all_wrong``, ``error``).

    Returns:
        The labels, each state once: in ``binary_search`` mode by wrong end leaf in node-id
        order, each leaf's in search order; in ``tree`` mode in search order. Empty when
        screening dropped the question.

    Raises:
        ConfigError: Not in label mode (no oracle).
        EngineFault: The engine is gone.
    """
    ctx = inputs.ctx
    if ctx.oracle is None:
        raise ConfigError("oracle", None, "OmegaPRM labels need the gold-answer oracle (label mode only)")
    stats = stats if stats is not None else LabelStats()
    search = _Search(inputs, config, inputs.shared_rollouts(config.max_rollout_tokens), stats)
    screen, _ = await search.probe((), config.screen_rollouts)
    if screen.error is not None or screen.n == 0:
        stats.screened_out = "error"
        stats.errors.append(screen.error or "no usable completion")
    else:
        stats.root_mc = screen.mc
        if screen.correct == screen.n:
            stats.screened_out = "all_correct"
        elif screen.correct == 0:
            stats.screened_out = "all_wrong"
    if stats.screened_out is not None:
        log.info("omega_prm %s: screened out (%s)", ctx.problem.id, stats.screened_out)
        return []
    root = search.states[search.root_prefix]
    if config.mode == "tree":
        await search.run_tree(root)
    else:
        results = await gather_all(*(search.binary_search(c.solution, 0) for c in search.wrong_leaves()))
        for labelled, _ in results:
            search.keep(labelled)
    return list(search.labels.values())

