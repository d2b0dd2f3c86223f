"""The generic tree-search loop (mctx-style): select -> expand -> evaluate -> backup.

An MCTS-like algorithm is this loop plus four small callables. One simulation:

1. **select**: from the root, repeatedly pick a live child with ``select_fn`` until an
   unexpanded node (the leaf). Terminal and errored nodes are dead, and so is a node
   whose children are all dead (AlphaMath marks it terminal); dead nodes are skipped.
2. **expand**: ``expand_fn(leaf)`` adds children (a failed expansion kills the leaf).
3. **evaluate**: ``evaluate_fn(children)`` gives each new child a value in [0, 1],
   stored as its ``first_value``.
4. **backup**: ``backup_fn(tree, child, value)`` for each new child, so every child is
   created with one visit (x1) and terminal children are backed up at creation
   (AlphaMath).

Two optional pieces cover searches that do more between those steps (ReST-MCTS*):

- ``gate_fn(node)`` is asked about the selected leaf before it is expanded: ``expand`` (go
  on), ``close`` (the path ends here: the node is marked ``end``, backed up with its value
  and never expanded) or ``stop`` (the whole search ends). New terminal children are asked
  too, where only ``stop`` matters.
- ``rollout_fn(children, values)`` replaces "back up every child": it returns which children
  to back up with which value (ReST-MCTS*: one child, its value mixed with a roll-forward).

- ``pick_fn(tree, dead)`` replaces the root-to-leaf descent: it returns the path (root first)
  to the node to expand, chosen by a global scan (MC-NEST / MCTSr: among every node that is
  not fully expanded), or None to end the search. ``select_fn`` is then unused (None).

``num_parallel`` simulations run at once (asyncio). Nodes on the path of an in-flight
simulation carry virtual loss, which the select function sees; a simulation that
reaches (or passes through) a node being expanded waits for it and descends again (not in an
adaptive tree: below). The
virtual loss of a simulation is undone however it ends (expanded, its node failed, the
engine faulted, the search was cancelled).

Adaptive parallelism (``max_parallel`` above ``num_parallel``): a tree runs more simulations
at once, up to ``max_parallel``, while the engine is under-filled (``ctx.occupancy``: each
extra simulation takes a grant of its request's sequences, given only while the engine's
sequences in flight, and those promised to simulations started but not yet sent, the floor's
included, stay within the server's target). When many trees are live the engine is
full and each runs ``num_parallel``; as they finish, the few left widen. Virtual loss changes
which leaves are selected, so this changes what a search does: the algorithms put it behind
their ``adaptive_parallel`` switch. What each tree used is returned (``Parallelism``).

An adaptive tree also never parks a simulation on a node being expanded: the loop selects
each new simulation's leaf itself, at once, skipping nodes under expansion and their subtrees
(the best path among the free ones, under virtual loss), and starts one, with its grant, only
when a free leaf exists; when every live leaf is being expanded it waits for an expansion to
end. A waiting simulation would hold its grant (promised sequences that no request carries)
and leave the engine under-filled while the target says it is full: measured against a fake
replica (``ponder bench parallel --fake``), granted-but-waiting simulations held 20 to 100 of a
128-sequence target.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from search.backup import BackupFn
from search.context import SearchContext
from search.evaluators import ValueFn
from search.occupancy import Lease
from search.selection import SelectFn, add_virtual_loss
from search.tree import Tree

GateAction = Literal["expand", "close", "stop"]
GateFn = Callable[[int], GateAction]
PickFn = Callable[[Tree, set[int]], "list[int] | None"]
"""(tree, dead node ids) -> path (root first) to the node to expand, or None: no node left."""
RolloutFn = Callable[[Sequence[int], Sequence[float]], Awaitable[list[tuple[int, float]]]]
"""(new children, their values) -> the (child, value) pairs to back up."""


@dataclasses.dataclass(frozen=True)
class LoopFns:
    """The pieces an MCTS-like algorithm plugs into the loop (the last three optional;
    ``select_fn`` is None when ``pick_fn`` chooses)."""

    select_fn: SelectFn | None
    expand_fn: Callable[[int], Awaitable[list[int]]]
    evaluate_fn: ValueFn
    backup_fn: BackupFn
    gate_fn: GateFn | None = None
    rollout_fn: RolloutFn | None = None
    pick_fn: PickFn | None = None

    def __post_init__(self) -> None:
        if (self.select_fn is None) == (self.pick_fn is None):
            raise ValueError("LoopFns needs exactly one of select_fn (descent) and pick_fn (global pick)")


@dataclasses.dataclass
class _LoopState:
    dead: set[int] = dataclasses.field(default_factory=set)
    pending: dict[int, asyncio.Event] = dataclasses.field(default_factory=dict)
    started: int = 0
    stopped: bool = False
    ended: bool = False
    """A simulation found no live node (the tree is exhausted): start no more."""


def _gate(tree: Tree, fns: LoopFns, state: _LoopState, node_id: int, value: float) -> GateAction:
    """Applies ``fns.gate_fn`` to ``node_id``; a closed node is marked, backed up and dead."""
    action = fns.gate_fn(node_id) if fns.gate_fn is not None else "expand"
    if action == "stop":
        state.stopped = True
    elif action == "close":
        tree.nodes[node_id].end = True
        state.dead.add(node_id)
        fns.backup_fn(tree, node_id, value)
    return action


def descend(tree: Tree, select_fn: SelectFn, dead: set[int]) -> list[int] | None:
    """The path (root first) to an unexpanded live node, or None when the tree is exhausted.

    Nodes whose children are all dead are added to ``dead`` on the way.
    """
    path = [0]
    while 0 not in dead:
        node = tree.nodes[path[-1]]
        if not node.children:
            return path
        live = [c for c in node.children if c not in dead]
        if live:
            path.append(select_fn(tree, node.id, live))
        else:
            dead.add(node.id)
            path = [0]
    return None


def _find_path(tree: Tree, fns: LoopFns, dead: set[int]) -> list[int] | None:
    """The next simulation's path by ``pick_fn`` or the ``select_fn`` descent (``dead`` grows)."""
    if fns.pick_fn is not None:
        return fns.pick_fn(tree, dead)
    assert fns.select_fn is not None
    return descend(tree, fns.select_fn, dead)


def _free_path(tree: Tree, fns: LoopFns, state: _LoopState) -> list[int] | None | Literal["busy"]:
    """The best path that passes no node under expansion; ``"busy"`` when every live leaf is
    being expanded (wait for one), None when no live node is left (the tree is exhausted)."""
    path = _find_path(tree, fns, state.dead | set(state.pending))  # skipped, not marked dead
    if path is not None and not any(i in state.pending for i in path):
        return path
    return "busy" if _find_path(tree, fns, state.dead) is not None else None


class _Expansion:
    """One simulation's claim on its leaf: the leaf marked pending and virtual loss on its path,
    taken at once and released exactly once (``release``, which also settles the simulation's
    ``lease``), however the simulation ends, even as a task cancelled before it began."""

    def __init__(self, tree: Tree, state: _LoopState, path: list[int], lease: Lease | None = None) -> None:
        self.tree, self.state, self.path, self.lease = tree, state, path, lease
        self.done = asyncio.Event()
        state.pending[path[-1]] = self.done
        add_virtual_loss(tree, path, 1)

    def release(self) -> None:
        if not self.done.is_set():
            add_virtual_loss(self.tree, self.path, -1)
            del self.state.pending[self.path[-1]]
            self.done.set()
        if self.lease is not None:
            self.lease.settle()


def _gate_leaf(ctx: SearchContext, fns: LoopFns, state: _LoopState, leaf: int) -> bool:
    """Asks ``fns.gate_fn`` about the selected leaf; True to expand it."""
    if leaf == 0 or fns.gate_fn is None:
        return True
    with ctx.bookkeeping():
        node = ctx.tree.nodes[leaf]
        return _gate(ctx.tree, fns, state, leaf, node.value if node.visits else (node.first_value or 0.0)) == "expand"


async def _simulate(ctx: SearchContext, fns: LoopFns, state: _LoopState, record: Parallelism) -> bool:
    """One simulation as ``num_parallel`` runs it: descend, waiting on a node under expansion."""
    tree = ctx.tree
    while True:
        with ctx.bookkeeping():
            path = _find_path(tree, fns, state.dead)
        if path is None:
            return False
        # A node being expanded has its children in the tree before they are evaluated and
        # marked dead (terminal, errored): a path through it waits, like one that ends at it.
        in_flight = next((state.pending[i] for i in path if i in state.pending), None)
        if in_flight is None:
            break
        record.waits += 1
        await in_flight.wait()
    if not _gate_leaf(ctx, fns, state, path[-1]):
        return not state.stopped
    return await _expand(ctx, fns, state, _Expansion(tree, state, path))


async def _expand(ctx: SearchContext, fns: LoopFns, state: _LoopState, claim: _Expansion) -> bool:
    """Expands the claimed leaf, evaluates and backs up its children; releases the claim."""
    tree, leaf = ctx.tree, claim.path[-1]
    try:
        children = await fns.expand_fn(leaf)
        values = await fns.evaluate_fn(children) if children else []
        backups = list(zip(children, values, strict=True))
        if children and fns.rollout_fn is not None:
            backups = await fns.rollout_fn(children, values)
    finally:
        claim.release()
    with ctx.bookkeeping():
        if not children:
            state.dead.add(leaf)
        for child, value in zip(children, values, strict=True):
            node = tree.nodes[child]
            if node.first_value is None:
                node.first_value = value
            if node.terminal or node.error is not None:
                state.dead.add(child)
        for child, value in backups:
            fns.backup_fn(tree, child, value)
        for child in children:  # a path that ended may still end the search (already dead)
            node = tree.nodes[child]
            if node.terminal and node.error is None and fns.gate_fn is not None and fns.gate_fn(child) == "stop":
                state.stopped = True
    return not state.stopped


@dataclasses.dataclass
class Parallelism:
    """Simulations in flight in one tree: what it was allowed and what it used.

    Attributes:
        adaptive: Whether it could go above ``floor`` (``bound > floor`` and an occupancy).
            An adaptive tree selects each simulation's leaf among those not under expansion
            and never parks a simulation on one (``no_free_leaf`` counts when it had to wait).
        floor: Simulations in flight whenever there is work (``num_parallel``).
        bound: The most it was allowed (``max_parallel``; ``floor`` when not adaptive).
        max_in_flight: The most simulations it had in flight at once.
        mean_in_flight: Simulations in flight, averaged over the loop's wall time.
        extra: Simulations started above ``floor`` on a grant (engine under-filled).
        waits: Times a simulation waited for a node another one was expanding (not adaptive).
        no_free_leaf: Times an adaptive tree had room for another simulation but every live
            leaf was being expanded, so it waited for an expansion to end.
        held_by_budget: Times an adaptive tree had room for an extra simulation but started
            none because the calls in flight, those just started and it, at the search's mean
            tokens a call, would reach its token budget (``Meter.would_reach``): extra simulations never overshoot
            a token cap that the floor alone would not.
    """

    adaptive: bool
    floor: int
    bound: int
    max_in_flight: int = 0
    mean_in_flight: float = 0.0
    extra: int = 0
    waits: int = 0
    no_free_leaf: int = 0
    held_by_budget: int = 0

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "mean_in_flight": round(self.mean_in_flight, 3)}


@dataclasses.dataclass
class Simulations:
    """What ``run_simulations`` did: simulations started and the parallelism used."""

    started: int
    parallel: Parallelism


async def run_simulations(ctx: SearchContext, fns: LoopFns, num_simulations: int, num_parallel: int = 1, *,
                          max_parallel: int | None = None, grant_size: int = 1) -> Simulations:
    """Runs up to ``num_simulations`` simulations on ``ctx.tree``.

    Stops early when the budget is exhausted, no live node is left, or ``fns.gate_fn``
    says ``stop`` (ReST-MCTS*'s end gate in evaluation mode). An exception from a simulation
    (an ``EngineFault``) or a cancellation cancels the others (their virtual loss undone)
    and propagates.

    Args:
        ctx: The search context (its tree is grown in place).
        fns: The select / expand / evaluate / backup pieces.
        num_simulations: Maximum number of simulations (>= 1).
        num_parallel: Simulations in flight at once (>= 1), with virtual loss: the floor.
        max_parallel: With ``ctx.occupancy``, up to this many in flight while the engine is
            under-filled (adaptive), each on a leaf not under expansion; None or <=
            ``num_parallel``: always ``num_parallel``.
        grant_size: Sequences one simulation's request asks for (its ``n``), the size of
            each grant.

    Returns:
        Simulations started and the parallelism used.
    """
    state = _LoopState()
    bound = max(num_parallel, max_parallel or num_parallel)
    occupancy = ctx.occupancy if bound > num_parallel else None
    record = Parallelism(adaptive=occupancy is not None, floor=num_parallel,
                         bound=bound if occupancy is not None else num_parallel)
    running: set[asyncio.Future[bool]] = set()
    claims: list[_Expansion] = []
    start = last = time.perf_counter()
    area = 0.0

    def tick() -> None:
        nonlocal last, area
        now = time.perf_counter()
        area += len(running) * (now - last)
        last = now

    def more() -> bool:
        return (state.started < num_simulations and not state.stopped and not state.ended
                and not ctx.exhausted())

    async def simulate(lease: Lease | None, claim: _Expansion | None) -> bool:
        if lease is not None:
            lease.bind()
        try:
            if claim is None:
                return await _simulate(ctx, fns, state, record)
            return await _expand(ctx, fns, state, claim)
        finally:
            if lease is not None:
                lease.settle()

    def start_adaptive() -> Literal["full", "busy", "stop"]:
        """Starts simulations on free leaves while there is room; says why it stopped."""
        assert occupancy is not None
        unsent = 0  # simulations started by this call: none has reached the policy yet
        while more() and len(running) < bound:
            floor = len(running) < num_parallel
            if not floor and ctx.meter.would_reach(unsent + 1):
                record.held_by_budget += 1
                return "stop"  # an extra simulation would overshoot the token budget; the floor goes on
            with ctx.bookkeeping():
                path = _free_path(ctx.tree, fns, state)
            if path is None:
                state.ended = True
                break
            if path == "busy":
                record.no_free_leaf += 1
                return "busy"
            lease = occupancy.reserve(grant_size) if floor else occupancy.grant(grant_size)
            if lease is None:  # the engine is full (the path was only read: nothing to undo)
                return "full"
            state.started += 1
            if not _gate_leaf(ctx, fns, state, path[-1]):
                lease.settle()
                continue
            if not floor:
                record.extra += 1
            claims.append(claim := _Expansion(ctx.tree, state, path, lease))
            tick()
            running.add(asyncio.ensure_future(simulate(lease, claim)))
            unsent += 1
            record.max_in_flight = max(record.max_in_flight, len(running))
        return "stop"

    def start_fixed() -> None:
        while more() and len(running) < record.bound:
            state.started += 1
            tick()
            running.add(asyncio.ensure_future(simulate(None, None)))
            record.max_in_flight = max(record.max_in_flight, len(running))

    try:
        while True:
            why = start_adaptive() if occupancy is not None else start_fixed()
            if not running:
                break
            wake = occupancy.changed() if why == "full" else None  # busy: only an expansion's end helps
            done, _ = await asyncio.wait(running | ({wake} if wake else set()), return_when=asyncio.FIRST_COMPLETED)
            if wake is not None and not wake.done():
                wake.cancel()
            for task in done & running:
                tick()
                running.discard(task)
                if not task.result():  # raises a simulation's exception
                    state.ended = True
            claims = [c for c in claims if not c.done.is_set()]
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for claim in claims:  # a task cancelled before it began never ran its own release or settle
            claim.release()
        tick()
        elapsed = last - start
        record.mean_in_flight = area / elapsed if elapsed > 0 else float(record.max_in_flight)
    return Simulations(state.started, record)
