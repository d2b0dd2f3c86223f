"""How full the engine is, as the searches see it: sequences in flight against a target.

The shared ``BoundedPolicy`` (``search.scheduler``) reports every request to one
``Occupancy``: a request of ``n`` samples is ``n`` sequences of the server's batch from the
moment it reaches the gate (queued or sent) until its reply is back. A search that could run
more work at once than its configured floor (MCTS simulations beyond ``num_parallel``) asks
``grant(size)`` for each extra piece; a grant is given only while the sequences in flight,
plus those already granted and not yet sent, stay within ``target``. So extra parallelism
fills the engine when live trees are few (the drain at the end of a run, a handful of deep
trees) and is never taken while the engine is full.

The target comes from the server, not from this code: ``model.target_in_flight`` in the run
config (``ponder bench server`` prints the concurrency at which the server's generated
tokens/s saturate), defaulting to ``model.max_in_flight``, the gate's own cap. A fixed
target from a measurement was chosen over an online controller (hill-climbing on tokens/s
against in-flight) because tokens/s under a search's bursty, prefix-shared load is noisy on
the time scale of a tree, and a controller that probes upward would itself change how many
sequences each tree runs, making runs harder to reproduce; the saturation point of a server
and model is stable, measured once, and recorded in the run's config.

A grant is *settled* (its sequences no longer counted as promised) when the granted task's
first request reaches the gate, or when the task ends without one: the task carries its
``Lease`` in a context variable, which the gate reads. A granted task that waits (for a node
another simulation is expanding) keeps its promise, so the engine is never promised more
than the target.
"""

from __future__ import annotations

import asyncio
import contextvars

from search.protocols import ConfigError

_LEASE: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("ponder_occupancy_lease", default=None)


class Lease:
    """``size`` sequences promised to one extra task until it settles (idempotent)."""

    def __init__(self, occupancy: Occupancy, size: int) -> None:
        self.occupancy = occupancy
        self.size = size
        self.settled = False

    def settle(self) -> None:
        if not self.settled:
            self.settled = True
            self.occupancy._promised -= self.size
            self.occupancy._changed()

    def bind(self) -> None:
        """Makes this the current task's lease (call inside the granted task)."""
        _LEASE.set(self)


def settle_current() -> None:
    """Settles the current task's lease, if it has one (its request reached the gate)."""
    lease = _LEASE.get()
    if lease is not None:
        lease.settle()


class Occupancy:
    """Sequences in flight at the engine's gate against ``target`` (what the server batches).

    Args:
        target: Sequences in flight at which the server's generated tokens/s saturate (>= 1).

    Attributes:
        in_flight: Sequences of requests at the gate now (sent or queued behind its cap).
        peak_in_flight: The most sequences ``in_flight`` has held.
        granted: Extra tasks granted so far (grants given, over the run).
    """

    def __init__(self, target: int) -> None:
        if target < 1:
            raise ConfigError("target_in_flight", target, "must be >= 1 (sequences the server batches at saturation)")
        self.target = target
        self.in_flight = 0
        self.peak_in_flight = 0
        self.granted = 0
        self._promised = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def load(self) -> int:
        """Sequences in flight plus those granted and not yet sent."""
        return self.in_flight + self._promised

    def headroom(self) -> int:
        """Sequences the engine could take before reaching the target (may be negative)."""
        return self.target - self.load

    def under_filled(self, size: int = 1) -> bool:
        """Whether ``size`` more sequences fit under the target."""
        return self.load + size <= self.target

    def grant(self, size: int = 1) -> Lease | None:
        """A lease for one extra task of ``size`` sequences, or None when the engine is full."""
        if size < 1 or not self.under_filled(size):
            return None
        self._promised += size
        self.granted += 1
        return Lease(self, size)

    def reserve(self, size: int = 1) -> Lease:
        """A lease given whatever the load: a task the search runs anyway (its floor), counted
        until its request reaches the gate so that grants see it."""
        self._promised += size
        return Lease(self, size)

    def enter(self, n: int) -> None:
        """A request of ``n`` sequences reached the gate (settles the calling task's lease)."""
        settle_current()
        self.in_flight += n
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self, n: int) -> None:
        """A request of ``n`` sequences left the gate (replied, failed or cancelled)."""
        self.in_flight -= n
        self._changed()

    def changed(self) -> asyncio.Future[None]:
        """A future done the next time the load falls (a request left, a lease settled)."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)
