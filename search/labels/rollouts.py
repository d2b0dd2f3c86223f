"""Monte-Carlo completions from token-id prefixes, shared by every label generator of one problem.

``Rollouts.estimate(prefix_ids, prefix_text, k)`` samples ``k`` whole continuations of a
prefix to EOS in one request (n = k, no step stop) through ``ctx.policy`` (the bounded policy
every tree shares, so label requests queue with the searches'), checks each
``prefix_text + completion`` with the gold-answer oracle and returns an ``Estimate``:
MC = correct / n (spec 08 §1).

Prefixes are cached by token ids: an identical prefix is never resampled, asking for ``k``
when ``j < k`` samples are cached requests only ``k - j`` more, and concurrent asks for one
prefix share one in-flight request. Label compute is metered into ``Rollouts.usage``, apart
from the search's ``ctx.usage``, and the search's budget does not stop it.

LABEL MODE ONLY: the context must carry an oracle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Sequence
from typing import Literal, TypeVar

from search.context import SearchContext
from search.protocols import (
    ConfigError,
    EngineFault,
    PonderError,
    StepProposal,
    Usage,
    VerdictStatus,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_ROLLOUT_SEED_TAG = 0x524F4C4C
"""Mixed into rollout seeds so that a label rollout never reuses the seed of the search's own
request from the same prefix (``SearchContext.step_sampling``)."""


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo estimate of one prefix.

    Attributes:
        n: Completions checked (0 when the request failed).
        correct: How many of them the oracle accepted (0 <= correct <= n).
        verdicts: Oracle status of each completion (``VerdictStatus`` values), in sample order.
        completions: The completions themselves (token ids, text, text offsets, finish
            reason), so a wrong one can be cut into steps and searched.
        seeds: Seed of the request each completion came from (None when unseeded).
        error: Why the request failed (a node-level failure); None on success.
    """

    n: int
    correct: int
    verdicts: tuple[str, ...] = ()
    completions: tuple[StepProposal, ...] = ()
    seeds: tuple[int | None, ...] = ()
    error: str | None = None

    @property
    def mc(self) -> float:
        """Success rate correct / n in [0, 1]; 0.0 when n = 0."""
        return self.correct / self.n if self.n else 0.0

    @property
    def completion_tokens(self) -> tuple[int, ...]:
        """Generated tokens of each completion."""
        return tuple(len(c.token_ids) for c in self.completions)

    @property
    def generated_tokens(self) -> int:
        """Generated tokens of all completions together."""
        return sum(self.completion_tokens)

    def is_correct(self, i: int) -> bool:
        """Whether completion ``i`` was accepted by the oracle."""
        return self.verdicts[i] == VerdictStatus.CORRECT.value


@dataclasses.dataclass
class LabelStats:
    """What a label generator did with one problem, for the caller to count.

    Attributes:
        screened_out: OmegaPRM screening (spec 08 §3.1) dropped the question:
            ``all_correct`` (too easy), ``all_wrong`` (too hard) or ``error`` (the root's
            estimate failed); None when it was kept or not screened.
        root_mc: MC of the root from screening, when screened.
        estimates: Prefix estimates asked for (cached ones included).
        searches: Binary searches run (OmegaPRM).
        iterations: Tree-mode selection iterations run (OmegaPRM ``tree``).
        skipped: Labels skipped because an estimate failed at its node (node-level failure).
        errors: The failures' messages.
        speculative: Estimates started ahead of need while the engine was under-filled
            (OmegaPRM ``adaptive_parallel``: the bisection's two possible next probes).
    """

    screened_out: Literal["all_correct", "all_wrong", "error"] | None = None
    root_mc: float | None = None
    estimates: int = 0
    searches: int = 0
    iterations: int = 0
    skipped: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    speculative: int = 0

    def skip(self, error: str | None) -> None:
        """Counts one label skipped on a node-level failure."""
        self.skipped += 1
        self.errors.append(error or "unknown error")


@dataclasses.dataclass
class _Entry:
    """What is cached for one prefix."""

    completions: list[StepProposal] = dataclasses.field(default_factory=list)
    verdicts: list[str] = dataclasses.field(default_factory=list)
    seeds: list[int | None] = dataclasses.field(default_factory=list)
    requests: int = 0
    error: str | None = None
    pending: asyncio.Future[None] | None = None


class Rollouts:
    """Prefix-cached Monte-Carlo completions for one problem's label generators.

    Args:
        ctx: The problem's context (policy, steps, sampling defaults, oracle).
        max_tokens: Token limit of one completion; None: what the remaining depth allows,
            ``(steps.max_depth - depth) x steps.step_tokens`` (as ``rollout_value``).
        temperature: Sampling temperature; None: the context's default.

    Requests use the context's step format and ``top_p`` with ``stop=()``. With a base seed,
    each request's seed derives from it, a rollout tag, the prefix and how many requests
    that prefix already made: repeatable whatever order the requests go out in, and never
    the seed of the search's own request from the same node (``ctx.step_sampling`` keys its
    counter by node id, which a prefix inside a rollout does not have).

    Attributes:
        usage: Compute spent on rollouts (apart from the search's ``ctx.usage``).

    Raises:
        ConfigError: The context has no oracle (not in label mode).
    """

    def __init__(self, ctx: SearchContext, *, max_tokens: int | None = None, temperature: float | None = None) -> None:
        if ctx.oracle is None:
            raise ConfigError("oracle", None, "Monte-Carlo labels need the gold-answer oracle (label mode only)")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError("max_tokens", max_tokens, "must be >= 1")
        self.ctx = ctx
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.usage = Usage()
        self._cache: dict[tuple[int, ...], _Entry] = {}

    def cached(self, prefix_ids: Sequence[int]) -> int:
        """Completions cached for a prefix."""
        entry = self._cache.get(tuple(prefix_ids))
        return len(entry.completions) if entry else 0

    async def estimate(self, prefix_ids: Sequence[int], prefix_text: str, k: int, *, depth: int = 0) -> Estimate:
        """MC estimate of a prefix from its first ``k`` cached-or-new completions.

        Args:
            prefix_ids: The prompt: root prefix + step token ids (the cache key).
            prefix_text: The solution text so far (step texts joined), prepended to each
                completion before the oracle checks it.
            k: Completions wanted (>= 1).
            depth: Steps in the prefix; sets the token limit when ``max_tokens`` is None.

        Returns:
            The estimate over the first ``k`` completions of this prefix (fewer if the
            policy returned errored proposals, which are dropped); with ``error`` set and
            n = 0 when the request failed at this prefix (a failure is cached: the prefix is
            not asked again).

        Raises:
            EngineFault: The engine is gone (never turned into an estimate).
        """
        if k < 1:
            raise ConfigError("k", k, "must be >= 1")
        key = tuple(prefix_ids)
        entry = self._cache.setdefault(key, _Entry())
        asked = False
        while entry.error is None and len(entry.completions) < k:
            if entry.pending is not None:  # someone is sampling this prefix: wait, then look again
                await asyncio.shield(entry.pending)
                continue
            if asked:  # our own request came back short (errored proposals): take what there is
                break
            asked = True
            await self._top_up(key, entry, prefix_text, k - len(entry.completions), depth)
        if entry.error is not None:
            return Estimate(n=0, correct=0, error=entry.error)
        verdicts = tuple(entry.verdicts[:k])
        return Estimate(
            n=len(verdicts),
            correct=sum(v == VerdictStatus.CORRECT.value for v in verdicts),
            verdicts=verdicts,
            completions=tuple(entry.completions[:k]),
            seeds=tuple(entry.seeds[:k]),
        )

    async def _top_up(self, key: tuple[int, ...], entry: _Entry, prefix_text: str, n: int, depth: int) -> None:
        """One request for ``n`` more completions of ``key``, shared through ``entry.pending``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry.pending = future
        try:
            await self._sample(key, entry, prefix_text, n, depth)
        except EngineFault as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it; no "never retrieved" warning
            raise
        finally:
            entry.pending = None
            if not future.done():
                future.set_result(None)  # waiters look again (and ask themselves if still short)

    async def _sample(self, key: tuple[int, ...], entry: _Entry, prefix_text: str, n: int, depth: int) -> None:
        ctx = self.ctx
        assert ctx.oracle is not None
        steps = ctx.steps
        max_tokens = self.max_tokens or max(steps.max_depth - depth, 1) * steps.step_tokens
        seed = ctx.sampling.seed
        if seed is not None:
            seed = hash((seed, _ROLLOUT_SEED_TAG, entry.requests, *key)) & 0x7FFFFFFF
        entry.requests += 1
        temperature = ctx.sampling.temperature if self.temperature is None else self.temperature
        sampling = dataclasses.replace(
            steps.sampling(n, temperature=temperature, top_p=ctx.sampling.top_p, seed=seed),
            stop=(),
            max_tokens=max_tokens,
        )
        try:
            generation = await ctx.policy.propose(key, sampling)
        except asyncio.CancelledError:
            entry.requests -= 1  # never answered: the next request of the prefix takes this seed
            raise
        except EngineFault:
            raise  # the engine is gone: the run stops, never a label
        except PonderError as exc:
            entry.error = f"{type(exc).__name__}: {exc}"
            log.warning("rollout request failed for a prefix of %d tokens: %s", len(key), entry.error)
            return
        self.usage.add(dataclasses.replace(generation.usage, calls=max(generation.usage.calls, 1), wall_seconds=0.0))
        completions = [p for p in generation.proposals if p.finish_reason != "error"]
        try:
            verdicts = await asyncio.gather(*(ctx.oracle(prefix_text + c.text) for c in completions))
        except asyncio.CancelledError:
            entry.requests -= 1  # nothing kept: the next request of the prefix takes this seed
            raise
        entry.completions.extend(completions)
        entry.verdicts.extend(v.status.value for v in verdicts)
        entry.seeds.extend([seed] * len(completions))


async def gather_all(*aws: Awaitable[T]) -> list[T]:
    """``asyncio.gather`` that cancels the others when one raises (an ``EngineFault`` stops
    every estimate of the problem) and re-raises that exception untouched."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
