"""The shared best-first frontier and the one budget meter (spec 04 §2 and §8), with
scripted priorities and fake usage."""

from __future__ import annotations

import asyncio

import pytest

from search.budget import Budget, Meter
from search.frontier import Frontier
from search.protocols import Usage
from search.selection import bfs_priority


def test_pops_highest_priority_first_and_ties_by_older_node():
    # spec 04 §2: the heap key is Σ logprob / depth^α, larger first; equal keys: lower id.
    f = Frontier()
    assert f.pop() == [0]  # the root is open from the start
    for node, steps in ((1, [-0.5]), (2, [-0.2]), (3, [-0.2]), (4, [-0.1, -0.9])):
        f.push(node, bfs_priority(steps, 0.0))
    assert f.pop(2) == [2, 3]
    assert f.pop() == [1]  # -0.5 before -1.0
    assert f.pop() == [4] and f.pop() == [] and not f.can_pop()
    assert f.expansion_order == [0, 2, 3, 1, 4]


def test_depth_alpha_changes_which_node_pops_first():
    # spec 04 §2 by hand: path A = (-0.6) at depth 1; path B = (-0.4, -0.4) at depth 2.
    # α = 0: A -0.6 beats B -0.8.  α = 2: B -0.8 / 4 = -0.2 beats A -0.6.
    for alpha, first in ((0.0, 1), (2.0, 2)):
        f = Frontier()
        f.pop()
        f.push(1, bfs_priority([-0.6], alpha))
        f.push(2, bfs_priority([-0.4, -0.4], alpha))
        assert f.pop() == [first]


def test_a_transposition_is_merged_not_pushed():
    # spec 04 §8: a state reached again is an edge to the existing node, never re-pushed.
    f = Frontier(root_key="A")
    f.pop()
    assert f.push(1, -0.1, key="B") is None
    assert f.push(2, -0.05, key="B") == 1   # same state as node 1, better priority: still merged
    assert f.push(3, -0.3, key="A") == 0    # back to the root's state
    assert f.push(4, -0.2) is None          # no key: always pushed
    assert f.merged == {2: 1, 3: 0}
    assert f.pop(5) == [1, 4] and len(f) == 0


def test_expansion_budget_caps_pops():
    f = Frontier(max_expansions=3)
    for node in range(1, 6):
        f.push(node, -node)
    assert f.pop(2) == [0, 1]
    assert f.left() == 1 and f.pop(4) == [2]  # one pop left of the budget
    assert not f.can_pop() and f.pop() == [] and len(f) == 3


def test_budget_reached_by_tokens_calls_or_wall():
    assert not Budget().reached(Usage(generated_tokens=10**9, calls=10**6), 10**6)
    assert Budget(max_generated_tokens=10).reached(Usage(generated_tokens=10))
    assert not Budget(max_generated_tokens=10).reached(Usage(generated_tokens=9))
    assert Budget(max_calls=2).reached(Usage(calls=2))
    assert Budget(max_wall_seconds=1.0).reached(Usage(), 1.0)
    assert not Budget(max_wall_seconds=1.0).reached(Usage(), 0.5)


async def test_reserved_calls_never_overshoot_when_shared():
    # Several agents share one theorem's meter (spec 04 §4): a request is counted when
    # reserved, so concurrent reservations stop exactly at max_calls.
    meter = Meter(Budget(max_calls=5))

    async def agent(sent: list[int]) -> None:
        while meter.reserve():
            await asyncio.sleep(0)  # the request is in flight
            meter.add(Usage(prompt_tokens=3, generated_tokens=2, calls=1, wall_seconds=9.0), reserved=True)
            sent.append(1)

    sent: list[int] = []
    await asyncio.wait_for(asyncio.gather(*(agent(sent) for _ in range(4))), 5)
    assert len(sent) == 5 and meter.usage.calls == 5
    assert meter.usage.generated_tokens == 10 and meter.usage.prompt_tokens == 15
    assert meter.usage.wall_seconds == 0.0  # a call's own wall time is not the search's
    assert meter.exhausted() and not meter.reserve()


def test_unreserved_calls_count_at_least_once_and_tools_apart():
    meter = Meter()
    meter.add(Usage(generated_tokens=4, calls=0))
    meter.add(Usage(generated_tokens=4, calls=2))
    meter.add_tool(0.25)
    meter.add_tool(0.5)
    assert meter.usage.calls == 3 and meter.usage.generated_tokens == 8
    assert meter.tool_calls == 2 and meter.tool_seconds == pytest.approx(0.75)


def test_wall_clock_excludes_engine_outages():
    outage = {"s": 0.0}
    meter = Meter(Budget(max_wall_seconds=0.05), pause_clock=lambda: outage["s"])
    meter.started_at -= 0.1  # 0.1 s have passed ...
    assert meter.exhausted()
    outage["s"] = 0.09  # ... 0.09 s of them with the engine down
    assert not meter.exhausted() and meter.paused_seconds() == pytest.approx(0.09)
