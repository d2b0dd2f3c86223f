"""Which replica a request goes to: per request (least loaded) or per problem (tree-affine).

Every node of a search tree extends its parent's prompt, and vLLM's prefix cache keeps the
blocks of prompts it has seen. With several replicas, least-loaded routing sends a tree's
next step to whichever replica is idlest, which has mostly never seen that tree's prefix:
the hit rate falls and each replica recomputes the others' prompts. Tree-affine routing
binds a problem (its :class:`~search.protocols.Affinity`, set by the scheduler) to one
replica when its first request is sent and keeps it there while the problem lives.

A binding moves only when

- its replica is out of rotation (the breaker took it out: dead, restarting, failed), or
- its replica is *saturated*: at least ``rebind_factor`` x the mean requests in flight over
  the live replicas, and at least ``rebind_min`` requests. Trees are spread evenly when bound
  (fewest open trees first), so a replica at twice the mean has a queue twice as long as the
  others'; moving costs one prefill of the tree's prompt on the new replica (a few hundred
  tokens, ~one decode step of the batch), while staying costs waiting behind ~mean extra
  requests, each many decode steps. The factor 2 moves a tree only when one replica holds as
  many requests as two others together (skewed trees: one wide beam, or a restarted replica
  that got its trees back); ``rebind_min`` keeps a lightly loaded engine from moving trees
  over a difference of one or two requests.

A new binding goes to the live replica with the fewest open trees bound, then the fewest
requests in flight; ties are broken by the problem id's hash (stable across runs, so a
resumed run puts a problem where it was). Requests without an affinity (warm-up, a command
with no scheduler) and ``mode="request"`` take the least-loaded replica, ties in turn.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol, TypeVar

from search.protocols import Affinity, ConfigError

RoutingMode = Literal["tree", "request"]


class Named(Protocol):
    name: str


S = TypeVar("S", bound=Named)


class Router:
    """Chooses a replica for each request; keeps problems' bindings.

    Args:
        mode: ``tree`` (bind a problem to a replica) or ``request`` (least loaded each time).
        rebind_factor: A bound replica is saturated at ``rebind_factor`` x the mean in flight.
        rebind_min: ... and at no fewer than this many requests in flight.
    """

    def __init__(self, mode: RoutingMode = "tree", *, rebind_factor: float = 2.0, rebind_min: int = 4) -> None:
        if mode not in ("tree", "request"):
            raise ConfigError("routing", mode, "expected 'tree' (a problem stays on one replica) or 'request'")
        if rebind_factor <= 1.0:
            raise ConfigError("rebind_factor", rebind_factor, "must be > 1 (a bound replica is saturated at "
                              "rebind_factor x the mean requests in flight)")
        if rebind_min < 1:
            raise ConfigError("rebind_min", rebind_min, "must be >= 1")
        self._prune_at = 64
        """Bindings at which :meth:`pick` next drops those of finished problems (amortised: a scan
        of every binding on each request cost ~60 us at 2,048 problems at once, issue 26 §4)."""
        self.mode = mode
        self.rebind_factor = rebind_factor
        self.rebind_min = rebind_min
        self.bindings: dict[Affinity, str] = {}
        self.moves = {"down": 0, "saturated": 0}
        """Bindings moved off a replica, by reason (for reports and tests)."""
        self.last_move: tuple[str, str] | None = None
        """``(from replica, reason)`` of the move the last :meth:`pick` made, else None."""
        self._turn = itertools.count()

    def pick(self, live: Sequence[S], in_flight: Mapping[str, int], affinity: Affinity | None) -> S:
        """The replica among ``live`` (non-empty) for one request of ``affinity``'s problem."""
        if self.mode == "request" or affinity is None:
            return self.least_loaded(live, in_flight)
        if len(self.bindings) >= self._prune_at:
            self._prune()
        self.last_move = None
        by_name = {s.name: s for s in live}
        bound = self.bindings.get(affinity)
        if bound is not None:
            if bound not in by_name:
                reason = "down"
            elif self.saturated(bound, live, in_flight):
                reason = "saturated"
            else:
                return by_name[bound]
            self.moves[reason] += 1
            self.last_move = (bound, reason)
        choice = self._bind_target(live, in_flight, affinity.key, exclude=bound)
        self.bindings[affinity] = choice.name
        return choice

    def saturated(self, name: str, live: Sequence[Named], in_flight: Mapping[str, int]) -> bool:
        """``name`` holds >= ``rebind_min`` and >= ``rebind_factor`` x the mean requests in flight."""
        if len(live) < 2:
            return False
        mine = in_flight.get(name, 0)
        mean = sum(in_flight.get(s.name, 0) for s in live) / len(live)
        return mine >= self.rebind_min and mine >= self.rebind_factor * mean

    def least_loaded(self, live: Sequence[S], in_flight: Mapping[str, int]) -> S:
        """The live replica with the fewest requests in flight; ties go round-robin."""
        turn = next(self._turn)
        order = [live[(turn + i) % len(live)] for i in range(len(live))]
        return min(order, key=lambda s: in_flight.get(s.name, 0))

    def trees(self) -> dict[str, int]:
        """Open problems bound to each replica."""
        self._prune()
        counts: dict[str, int] = {}
        for name in self.bindings.values():
            counts[name] = counts.get(name, 0) + 1
        return counts

    def _bind_target(self, live: Sequence[S], in_flight: Mapping[str, int], key: str,
                               exclude: str | None) -> S:
        candidates = [s for s in live if s.name != exclude] or list(live)
        trees = self.trees()
        start = zlib.crc32(key.encode()) % len(candidates)
        order = [candidates[(start + i) % len(candidates)] for i in range(len(candidates))]
        return min(order, key=lambda s: (trees.get(s.name, 0), in_flight.get(s.name, 0)))

    def _prune(self) -> None:
        closed = [a for a in self.bindings if not a.open]
        for a in closed:
            del self.bindings[a]
        self._prune_at = max(64, 2 * len(self.bindings))
