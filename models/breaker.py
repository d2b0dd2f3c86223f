"""The circuit breaker that every tree of a run shares: which endpoints are up, and recovery.

A request that finds its endpoint unreachable (connection refused or reset, the server gone)
or that keeps failing there (5xx or timeouts past the client's retries) *reports* it. The
breaker then takes the endpoint out of rotation: no request is dispatched to it, requests
go to the other endpoints of the pool, and when none is left they wait. Meanwhile one
recovery runs per endpoint:

- a server ponder owns (``restart_fn`` given: the embedded one, or one recorded by
  ``ponder serve``) is restarted, at most ``max_restarts`` times over the breaker's life;
- an external endpoint is probed (``GET /health``) with exponential backoff until it answers
  or ``outage_timeout_s`` has passed.

Either way a healthy probe first ends the outage at once (a blip: stale keep-alive
connections after a restart, say). After recovery, waiting requests are dispatched again,
so searches continue where they stood. When recovery fails the endpoint is *failed*: once
every endpoint is failed, waiting requests raise :class:`~search.protocols.EngineFault`,
which no search folds into a result.

``outage_seconds()`` is the time during which no endpoint was up; searches stop their
wall-clock budget meanwhile. Waiting is polling (every ``poll_s``), so the breaker is not
bound to one event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from search.protocols import ConfigError, EngineFault

ProbeFn = Callable[[str], Awaitable[bool]]
"""``probe_fn(url) -> healthy``; must not raise on an unreachable server."""
RestartFn = Callable[[], Awaitable[str]]
"""Restarts a server ponder owns; returns the URL it now serves on (the port may change)."""
EventFn = Callable[[dict[str, Any]], None]


@dataclasses.dataclass
class EndpointState:
    """One endpoint as the breaker sees it.

    Attributes:
        name: Stable identity (the configured URL); requests and reports use it.
        url: Where requests go now (differs from ``name`` after a restart on a new port).
        restart_fn: How to restart it, for a server ponder owns; None for an external one.
        up: Requests may be dispatched to it.
        generation: Bumped at every outage and recovery; a report from an older
            generation (a request sent before the last recovery) is ignored.
        failed: Set when recovery gave up; the endpoint stays out for good.
    """

    name: str
    url: str
    restart_fn: RestartFn | None = None
    up: bool = True
    generation: int = 0
    cause: str = ""
    failed: EngineFault | None = None
    recovery: asyncio.Task[None] | None = None


class CircuitBreaker:
    """Shared endpoint health for one client (and so for every tree that uses it).

    Args:
        endpoints: Endpoint names (normalised base URLs).
        probe_fn: Health probe of a URL.
        restart_fns: Endpoint name -> restart function, for servers ponder owns.
        max_restarts: Restarts allowed over the breaker's life (all endpoints together).
        outage_timeout_s: How long to wait for an external endpoint to answer again.
        on_event: Called with each event (``outage``, ``restart``, ``recovered``, ``failed``)
            as a JSON-able dict, e.g. to log it in the run directory.
        poll_s: Seconds between checks while requests wait for an endpoint.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        probe_fn: ProbeFn,
        *,
        restart_fns: Mapping[str, RestartFn] | None = None,
        max_restarts: int = 5,
        outage_timeout_s: float = 300.0,
        on_event: EventFn | None = None,
        poll_s: float = 0.2,
    ) -> None:
        if max_restarts < 0:
            raise ConfigError("max_restarts", max_restarts, "must be >= 0")
        if outage_timeout_s <= 0:
            raise ConfigError("outage_timeout_s", outage_timeout_s, "must be > 0 seconds")
        restart_fns = restart_fns or {}
        unknown = set(restart_fns) - set(endpoints)
        if unknown:
            raise ConfigError("restart_fns", sorted(unknown), "not among the endpoints")
        self.states = {e: EndpointState(e, e, restart_fns.get(e)) for e in endpoints}
        self.probe_fn = probe_fn
        self.max_restarts = max_restarts
        self.outage_timeout_s = outage_timeout_s
        self.on_event = on_event
        self.poll_s = poll_s
        self.outages = 0
        self.restarts = 0
        self._all_down_since: float | None = None
        self._down_seconds = 0.0

    # -- what requests see ----------------------------------------------------------------

    def url(self, name: str) -> str:
        """The URL that requests for endpoint ``name`` go to now."""
        return self.states[name].url

    def live(self) -> list[EndpointState]:
        return [s for s in self.states.values() if s.up]

    def outage_seconds(self) -> float:
        """Seconds so far during which no endpoint was up (the current outage included)."""
        ongoing = time.monotonic() - self._all_down_since if self._all_down_since is not None else 0.0
        return self._down_seconds + ongoing

    async def acquire(
        self, pick_fn: Callable[[list[EndpointState]], EndpointState], pinned: str | None = None
    ) -> EndpointState:
        """A live endpoint to send a request to (``pick_fn`` chooses among the live ones, or
        ``pinned`` only); waits while none is live.

        Raises:
            EngineFault: every candidate endpoint failed to recover.
        """
        while True:
            candidates = [self.states[pinned]] if pinned is not None else list(self.states.values())
            live = [s for s in candidates if s.up]
            if live:
                return pick_fn(live)
            if all(s.failed is not None for s in candidates):
                raise candidates[0].failed  # type: ignore[misc]
            await asyncio.sleep(self.poll_s)

    def report(self, state: EndpointState, generation: int, cause: str) -> None:
        """A request sent to ``state`` at ``generation`` found it unreachable or failing.

        Takes the endpoint out of rotation and starts its recovery, unless it is already
        down or has recovered since the request was sent.
        """
        if not state.up or state.generation != generation:
            return
        state.up = False
        state.generation += 1
        state.cause = cause
        self.outages += 1
        self._emit("outage", state, cause=cause)
        self._account()
        state.recovery = asyncio.get_running_loop().create_task(self._recover(state))

    # -- recovery -------------------------------------------------------------------------

    async def _recover(self, state: EndpointState) -> None:
        started = time.monotonic()
        restarted = False
        try:
            if not await self.probe_fn(state.url):
                if state.restart_fn is not None:
                    await self._restart(state)
                    restarted = True
                else:
                    await self._wait_for(state, started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recovery gave up: the endpoint is out for good
            fault = exc if isinstance(exc, EngineFault) else EngineFault(
                state.name, f"recovery failed ({type(exc).__name__}: {exc}); first error: {state.cause}")
            state.failed = fault
            self._emit("failed", state, cause=fault.cause)
        else:
            state.up = True
            state.generation += 1
            self._emit("recovered", state, seconds=round(time.monotonic() - started, 2), restarted=restarted)
        finally:
            self._account()

    async def _restart(self, state: EndpointState) -> None:
        if self.restarts >= self.max_restarts:
            raise EngineFault(
                state.name,
                f"server down ({state.cause}) and the restart limit is reached "
                f"({self.max_restarts} restarts this run; raise model.max_restarts)",
            )
        self.restarts += 1
        self._emit("restart", state, attempt=self.restarts)
        assert state.restart_fn is not None
        state.url = await state.restart_fn()
        if not await self.probe_fn(state.url):
            raise EngineFault(state.name, f"restarted server at {state.url} does not answer /health")

    async def _wait_for(self, state: EndpointState, started: float) -> None:
        delay = self.poll_s
        while True:
            waited = time.monotonic() - started
            if waited >= self.outage_timeout_s:
                raise EngineFault(
                    state.name,
                    f"unreachable for {waited:.0f} s (outage_timeout_s={self.outage_timeout_s:g}); "
                    f"first error: {state.cause}",
                )
            await asyncio.sleep(min(delay, self.outage_timeout_s - waited))
            delay = min(delay * 2, 10.0)
            if await self.probe_fn(state.url):
                return

    # -- bookkeeping ----------------------------------------------------------------------

    def _account(self) -> None:
        """Opens or closes the all-down interval."""
        now = time.monotonic()
        if not self.live():
            if self._all_down_since is None:
                self._all_down_since = now
        elif self._all_down_since is not None:
            self._down_seconds += now - self._all_down_since
            self._all_down_since = None

    def _emit(self, event: str, state: EndpointState, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event({"event": event, "endpoint": state.name, "url": state.url,
                           "time": time.time(), **fields})

    def close(self) -> None:
        """Cancels recoveries in progress (of the running loop; others are gone with theirs)."""
        for state in self.states.values():
            task, state.recovery = state.recovery, None
            if task is not None and not task.done():
                try:
                    task.cancel()
                except RuntimeError:  # its loop is closed
                    pass

    def stats(self) -> dict[str, int]:
        """Outages seen and restarts made so far."""
        return {"outages": self.outages, "restarts": self.restarts}
