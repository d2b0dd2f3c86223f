"""Many problems, one engine: bounded model pipes and the per-problem coroutine runner.

Every problem runs as its own coroutine (at most ``max_concurrent_problems`` at once) and
every node expansion is an independent request. Wrapping the policy (and reward model)
in ``BoundedPolicy`` / ``BoundedRewardModel`` once and sharing the wrapper across all
problems' contexts keeps at most ``max_in_flight`` requests at the engine, which
batches them continuously. The policy's gate also keeps the engine's ``Occupancy``
(``search.occupancy``): sequences in flight against ``target_in_flight``, which searches
with adaptive parallelism read before running more of their work at once; a reward model
whose requests go to the same server counts its sequences there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

from search.aggregate import answered_terminals, vote_path
from search.algorithms import AlgorithmConfig, run_search
from search.context import SearchContext
from search.occupancy import Occupancy
from search.protocols import (
    Affinity,
    ConfigError,
    EngineFault,
    Generation,
    Policy,
    Problem,
    RewardModel,
    Sampling,
    StepScores,
    problem_affinity,
    score_starts,
)
from search.trace import SearchResult

Outcome = SearchResult | Exception
OnResult = Callable[[Problem, Outcome], Awaitable[None] | None]


class _Gate:
    """At most ``max_in_flight`` requests at once; counts the peak for tests and reports."""

    def __init__(self, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ConfigError("max_in_flight", max_in_flight, "must be >= 1")
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.peak_in_flight = 0
        self._slots = asyncio.Semaphore(max_in_flight)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        async with self._slots:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1


class BoundedPolicy(_Gate):
    """A ``Policy`` that lets at most ``max_in_flight`` requests reach ``policy`` at once,
    and counts the sequences they ask for in ``occupancy``.

    Args:
        policy: The engine client.
        max_in_flight: Concurrent requests allowed (size it to the server's batch).
        target_in_flight: Sequences in flight at which the server saturates (the searches'
            fill target, ``search.occupancy``); None: ``max_in_flight``.
    """

    def __init__(self, policy: Policy, max_in_flight: int, target_in_flight: int | None = None) -> None:
        super().__init__(max_in_flight)
        self.policy = policy
        self.occupancy = Occupancy(target_in_flight if target_in_flight is not None else max_in_flight)

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        self.occupancy.enter(sampling.n)  # queued behind the cap counts: the engine will get it
        try:
            async with self._slot():
                return await self.policy.propose(prefix, sampling)
        finally:
            self.occupancy.leave(sampling.n)


class BoundedRewardModel(_Gate):
    """A ``RewardModel`` that lets at most ``max_in_flight`` calls reach ``reward_model``, and,
    when its requests go to the policy's server, counts them in that server's ``occupancy``.

    A judge on the policy's server (self-evaluation, a generative PRM served by the same vLLM)
    takes places in the same batch as the searches' proposals, so the fill that adaptive
    parallelism reads must see them: each ``score`` call counts, from the moment it reaches
    the gate until its scores are back, one sequence per distinct step prefix it asks about
    (``score_starts``: steps ``first[i]:`` of path ``i``) times ``sequences_per_step``. That
    is what a judge scoring each prefix with one request sends (``models.reward``); a judge
    that memoises sends fewer, so the count is an upper bound and errs toward a fuller engine
    (fewer extra grants, never more). A judge on its own server leaves ``occupancy`` None.

    Args:
        reward_model: The step scorer.
        max_in_flight: Concurrent ``score`` calls allowed.
        occupancy: The policy server's fill (``BoundedPolicy.occupancy``) when the judge's
            requests go to that server; None: not counted (its own server, or no server).
        sequences_per_step: Sequences one step prefix's request asks for (a self-evaluation
            sampling ``n`` ratings: ``n``).
    """

    def __init__(self, reward_model: RewardModel, max_in_flight: int, occupancy: Occupancy | None = None,
                 sequences_per_step: int = 1) -> None:
        super().__init__(max_in_flight)
        if sequences_per_step < 1:
            raise ConfigError("sequences_per_step", sequences_per_step, "must be >= 1 (the n of a judge's request)")
        self.reward_model = reward_model
        self.occupancy = occupancy
        self.sequences_per_step = sequences_per_step
        self.counted = 0
        """Sequences counted in ``occupancy`` so far (over the run)."""

    def sequences(self, paths: Sequence[Sequence[str]], first: Sequence[int] | None) -> int:
        """Sequences one ``score`` call sends at most: distinct step prefixes asked about x n."""
        prefixes = {tuple(path[: j + 1]) for path, start in zip(paths, score_starts(paths, first), strict=True)
                    for j in range(start, len(path))}
        return len(prefixes) * self.sequences_per_step

    async def score(
        self, problem: Problem, paths: Sequence[Sequence[str]], first: Sequence[int] | None = None
    ) -> StepScores:
        occupancy = self.occupancy
        if occupancy is None:
            async with self._slot():
                return await self.reward_model.score(problem, paths, first)
        n = self.sequences(paths, first)
        occupancy.enter(n)  # queued behind the cap counts, as the policy's requests do
        self.counted += n
        try:
            async with self._slot():
                return await self.reward_model.score(problem, paths, first)
        finally:
            occupancy.leave(n)


def partial_result(ctx: SearchContext, config: AlgorithmConfig) -> SearchResult:
    """The result of a search cut off by its wall-clock limit: a majority vote over the
    answered terminals found so far (``extra["timed_out"]`` is True)."""
    found = answered_terminals(ctx.tree)
    result = ctx.result(config.algorithm, vote_path(ctx.tree, found, [1.0] * len(found)), timed_out=True)
    result.config = config.model_dump(mode="json")
    return result


async def solve_one(ctx: SearchContext, config: AlgorithmConfig, grace_seconds: float = 2.0) -> SearchResult:
    """``run_search`` with the wall-clock budget enforced.

    Searches stop themselves once ``ctx.budget.max_wall_seconds`` has passed (checked
    before each model call); a search still running ``grace_seconds`` later (a stuck
    call) is cancelled and ``partial_result`` is returned. The clock is the context's, so
    time the engine spent down (``ctx.pause_clock``) does not count.
    """
    limit = ctx.budget.max_wall_seconds
    if limit is None:
        return await run_search(ctx, config)
    search = asyncio.ensure_future(run_search(ctx, config))
    try:
        while (remaining := limit + grace_seconds - ctx.elapsed()) > 0:
            done, _ = await asyncio.wait({search}, timeout=remaining)
            if done:
                return search.result()
        search.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await search
        if search.cancelled():
            return partial_result(ctx, config)
        return search.result()  # it ended (or failed) just before the cancel landed
    finally:
        if not search.done():
            search.cancel()


async def solve_all(
    problems: Iterable[Problem],
    make_ctx: Callable[[Problem], SearchContext | Awaitable[SearchContext]],
    config: AlgorithmConfig,
    max_concurrent_problems: int,
    on_result: OnResult | None = None,
    *,
    grace_seconds: float = 2.0,
) -> list[Outcome]:
    """Solves every problem, each as its own coroutine, ``max_concurrent_problems`` at once.

    An exception while building a context or searching is recorded as that problem's
    outcome and the run goes on, except an :class:`EngineFault` (the engine is gone and
    could not be recovered): it stops the run, and the problems in progress get no outcome.
    An exception from ``on_result`` stops the run too.

    Args:
        problems: The problems (consumed lazily, in order).
        make_ctx: Builds a problem's context (sync or async); called when its turn comes.
        config: The algorithm config, shared by all problems.
        max_concurrent_problems: Problems in progress at once (>= 1).
        on_result: Called as ``on_result(problem, result_or_exception)`` as each problem
            finishes (sync or async), e.g. to append a line to ``results.jsonl``; it runs
            as its own task while the worker starts the next problem (at most
            ``max_concurrent_problems`` of them pending). The run returns when all are done.
        grace_seconds: Extra seconds past a problem's wall budget before it is cancelled.

    Returns:
        One ``SearchResult`` or exception per problem, in input order.
    """
    if max_concurrent_problems < 1:
        raise ConfigError("max_concurrent_problems", max_concurrent_problems, "must be >= 1")
    queue = iter(enumerate(problems))
    outcomes: dict[int, Outcome] = {}
    # Finished problems waiting for on_result (verification, traces, labels): at most as many
    # as searches run at once. A search's slot is freed as soon as its search ends, so the
    # next problem's requests reach the engine while the last one is being recorded.
    recording = asyncio.Semaphore(max_concurrent_problems)

    async def record(problem: Problem, outcome: Outcome, affinity: Affinity) -> None:
        try:
            assert on_result is not None
            done = on_result(problem, outcome)
            if inspect.isawaitable(done):
                await done
        finally:
            affinity.open = False
            recording.release()

    async def worker(group: asyncio.TaskGroup) -> None:
        for index, problem in queue:
            # Every request of this problem (its search, then its labelling in record())
            # carries one affinity: an engine with replicas keeps the tree on one of them.
            affinity = Affinity(problem.id)
            problem_affinity.set(affinity)
            try:
                ctx = make_ctx(problem)
                if inspect.isawaitable(ctx):
                    ctx = await ctx
                outcome: Outcome = await solve_one(ctx, config, grace_seconds)
            except EngineFault:
                raise  # not a search result: the run stops, the problem stays unfinished
            except Exception as exc:  # one problem's failure is recorded, not fatal
                outcome = exc
            outcomes[index] = outcome
            if on_result is not None:
                await recording.acquire()
                group.create_task(record(problem, outcome, affinity))
            else:
                affinity.open = False

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max_concurrent_problems):
                group.create_task(worker(group))
    except ExceptionGroup as failed:  # an engine fault or on_result: surface its own exception
        raise failed.exceptions[0] from failed
    return [outcomes[i] for i in sorted(outcomes)]
