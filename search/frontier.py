"""The best-first frontier: open nodes by priority, transpositions, the expansion budget.

One home for the queue that best-first search over steps (``search.algorithms.best_first``)
and the prover's best-first attempt over proof states (``search.prover.bfs``, spec 04 §2)
both pop from. Larger priority pops first; equal priorities pop the lower node id (the
older node) first. The root is open from the start with priority 0 (spec 04 §8: it is
pushed without the depth division).

Transpositions (spec 04 §1 and §8): a node pushed with a ``key`` that an earlier node
already holds is merged into that node (recorded in ``merged``) and not pushed again.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable


class Frontier:
    """A max-priority queue of node ids with a transposition table and an expansion count.

    Args:
        max_expansions: Pops allowed in all (the node budget); None: unlimited.
        root: The node open from the start (priority 0).
        root_key: The root's transposition key (its state), or None.
    """

    def __init__(self, max_expansions: int | None = None, *, root: int = 0, root_key: Hashable | None = None) -> None:
        self.max_expansions = max_expansions
        self._heap: list[tuple[float, int]] = [(-0.0, root)]
        self.keys: dict[Hashable, int] = {} if root_key is None else {root_key: root}
        self.expansion_order: list[int] = []
        """Popped node ids, in pop order."""
        self.merged: dict[int, int] = {}
        """Node id -> the earlier node holding the same key (not pushed)."""

    def __len__(self) -> int:
        return len(self._heap)

    def left(self) -> int:
        """Pops the expansion budget still allows (a large number when unlimited)."""
        if self.max_expansions is None:
            return len(self._heap)
        return max(self.max_expansions - len(self.expansion_order), 0)

    def can_pop(self) -> bool:
        """Whether a node is open and the expansion budget allows popping it."""
        return bool(self._heap) and self.left() > 0

    def push(self, node_id: int, priority: float, key: Hashable | None = None) -> int | None:
        """Opens ``node_id`` with ``priority`` (larger pops first).

        Returns:
            None when pushed; the id of the node already holding ``key`` when it is a
            transposition (then recorded in ``merged`` and not pushed).
        """
        if key is not None:
            holder = self.keys.get(key)
            if holder is not None:
                self.merged[node_id] = holder
                return holder
            self.keys[key] = node_id
        heapq.heappush(self._heap, (-priority, node_id))
        return None

    def pop(self, n: int = 1) -> list[int]:
        """Pops up to ``n`` nodes, best first, within the expansion budget; records them in
        ``expansion_order``."""
        take = min(n, self.left(), len(self._heap))
        batch = [heapq.heappop(self._heap)[1] for _ in range(take)]
        self.expansion_order += batch
        return batch
