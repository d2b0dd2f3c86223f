"""Compute limits and the meter that spends against them: one type for every search.

A :class:`Budget` says how much one search may spend (policy tokens, policy requests, wall
seconds); a :class:`Meter` counts what it spent (``search.protocols.Usage``), keeps its wall
clock (engine outages excluded) and says when the budget is reached. ``SearchContext``
(a problem's search) and the prover (a theorem's agents, spec 04) each own one meter.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from search.protocols import Usage


class Budget(BaseModel):
    """Compute limits for one search; None means unlimited.

    Limits are checked before every model call, so calls already in flight may overshoot
    a token limit by at most their own output (a caller that reserves its calls with
    :meth:`Meter.reserve` never overshoots ``max_calls``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_generated_tokens: int | None = Field(None, ge=1, description="Policy tokens generated, summed over calls.")
    max_calls: int | None = Field(None, ge=1, description="Policy requests (reward-model calls not counted).")
    max_wall_seconds: float | None = Field(None, gt=0, description="Elapsed seconds for the search.")

    def reached(self, usage: Usage, elapsed_s: float = 0.0) -> bool:
        """Whether ``usage`` after ``elapsed_s`` seconds has reached any limit."""
        return (
            (self.max_generated_tokens is not None and usage.generated_tokens >= self.max_generated_tokens)
            or (self.max_calls is not None and usage.calls >= self.max_calls)
            or (self.max_wall_seconds is not None and elapsed_s >= self.max_wall_seconds)
        )


@dataclasses.dataclass(eq=False)
class Meter:
    """What one search spent against its :class:`Budget`.

    Attributes:
        budget: The limits.
        pause_clock: Cumulative seconds the engine was unavailable; the wall clock stops
            meanwhile. None: never paused.
        usage: Policy and reward-model compute (tokens, calls).
        model_wait_seconds: Summed (possibly overlapping) latency of model calls, seconds.
        in_flight: Policy calls sent and not yet answered (``SearchContext.propose``).
        tool_calls: Calls to an external tool (a proof assistant's tactic runs).
        tool_seconds: Seconds those calls took, summed.
    """

    budget: Budget = dataclasses.field(default_factory=Budget)
    pause_clock: Callable[[], float] | None = None
    usage: Usage = dataclasses.field(default_factory=Usage, init=False)
    model_wait_seconds: float = dataclasses.field(default=0.0, init=False)
    in_flight: int = dataclasses.field(default=0, init=False)
    tool_calls: int = dataclasses.field(default=0, init=False)
    tool_seconds: float = dataclasses.field(default=0.0, init=False)
    started_at: float = dataclasses.field(default_factory=time.perf_counter, init=False)
    paused_at_start: float = dataclasses.field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.start_clock()

    def start_clock(self) -> None:
        """Starts (or restarts) the wall clock."""
        self.started_at = time.perf_counter()
        self.paused_at_start = self.pause_clock() if self.pause_clock else 0.0

    def paused_seconds(self) -> float:
        """Seconds of engine outage since the clock started."""
        return self.pause_clock() - self.paused_at_start if self.pause_clock else 0.0

    def elapsed(self) -> float:
        """Seconds since the clock started, engine outages excluded."""
        return time.perf_counter() - self.started_at - self.paused_seconds()

    def exhausted(self) -> bool:
        """Whether any budget limit is reached."""
        return self.budget.reached(self.usage, self.elapsed() if self.budget.max_wall_seconds is not None else 0.0)

    def would_reach(self, unsent_calls: int) -> bool:
        """Whether the token limit is reached once the policy calls in flight (``in_flight``,
        every caller's) and ``unsent_calls`` more (decided but not yet sent, the one about to
        start included) each generate the mean of the calls finished so far.

        What a call that is optional checks before it starts (an extra simulation granted by an
        under-filled engine): :meth:`exhausted` counts only finished calls, so calls started
        side by side near the limit overshoot it by up to their number times a call's output;
        optional ones are held back by the projection instead. With no token limit, or no
        finished call to take a mean from, it is :meth:`exhausted`.
        """
        limit = self.budget.max_generated_tokens
        if limit is None or self.usage.calls == 0:
            return self.exhausted()
        mean = self.usage.generated_tokens / self.usage.calls
        return self.exhausted() or self.usage.generated_tokens + (self.in_flight + unsent_calls) * mean >= limit

    def reserve(self) -> bool:
        """Counts one policy request before it is sent, so that concurrent callers sharing
        the meter cannot overshoot ``max_calls``; False (nothing counted) when the budget is
        reached. Record the request's usage with ``add(usage, reserved=True)``."""
        if self.exhausted():
            return False
        self.usage.calls += 1
        return True

    def add(self, usage: Usage, *, reserved: bool = False) -> None:
        """Adds one policy call's ``usage`` (its wall seconds ignored). The call is counted
        (at least once) unless it was reserved."""
        calls = 0 if reserved else max(usage.calls, 1)
        self.usage.add(dataclasses.replace(usage, calls=calls, wall_seconds=0.0))

    def add_tool(self, seconds: float) -> None:
        """Counts one external-tool call that took ``seconds``."""
        self.tool_calls += 1
        self.tool_seconds += seconds
