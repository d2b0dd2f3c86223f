"""Tree-affine routing (issue 26 §3): a problem stays on its replica, moves only when it dies
or is saturated; per-request routing spreads as before."""

import asyncio
import dataclasses

import httpx
import pytest

from models.client import VLLMClient
from models.routing import Router
from search.protocols import Affinity, ConfigError, problem_affinity

A, B = "http://a:1", "http://b:1"


@dataclasses.dataclass
class Rep:
    name: str


def reply() -> dict:
    return {"choices": [{"index": 0, "text": "ok", "token_ids": [5], "finish_reason": "stop",
                         "stop_reason": None, "logprobs": None}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


class Replicas:
    """Fake replicas behind one MockTransport; records which problem's request hit which host."""

    def __init__(self) -> None:
        self.dead: set[str] = set()
        self.hits: list[tuple[str, str | None]] = []

    async def handler(self, request: httpx.Request) -> httpx.Response:
        host = f"http://{request.url.host}:{request.url.port}"
        if host in self.dead:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/health":
            return httpx.Response(200)
        affinity = problem_affinity.get()
        self.hits.append((host, affinity.key if affinity else None))
        await asyncio.sleep(0.002)
        return httpx.Response(200, json=reply())


def client(replicas: Replicas, routing: str = "tree", **kw) -> VLLMClient:
    return VLLMClient([A, B], "m", transport=httpx.MockTransport(replicas.handler), routing=routing,
                      backoff_s=0.001, outage_timeout_s=5, **kw)


async def run_problem(c: VLLMClient, key: str, requests: int) -> Affinity:
    affinity = Affinity(key)
    problem_affinity.set(affinity)  # as the scheduler does, in the problem's own task
    for _ in range(requests):
        await asyncio.gather(c.complete([1, 2]), c.complete([1, 2, 3]))  # a tree's parallel expansions
    return affinity


async def test_each_problem_stays_on_the_replica_it_was_bound_to():
    reps = Replicas()
    async with client(reps) as c:
        await asyncio.gather(*(asyncio.create_task(run_problem(c, f"p{i}", 10)) for i in range(6)))
    hosts: dict[str, set[str]] = {}
    for host, key in reps.hits:
        hosts.setdefault(key, set()).add(host)
    assert all(len(h) == 1 for h in hosts.values()), hosts  # sticky: one replica per problem
    per_replica = [sum(1 for h in hosts.values() if h == {x}) for x in (A, B)]
    assert per_replica == [3, 3]  # bound evenly (fewest open trees first)
    assert c.router.moves == {"down": 0, "saturated": 0}


async def test_per_request_mode_spreads_one_problem_over_replicas():
    reps = Replicas()
    async with client(reps, routing="request") as c:
        await run_problem(c, "p0", 10)
    assert {h for h, _ in reps.hits} == {A, B}
    assert not c.router.bindings


async def test_a_problem_moves_when_its_replica_dies_and_stays_moved():
    reps = Replicas()
    events: list[dict] = []
    async with client(reps, on_event=events.append) as c:
        affinity = await run_problem(c, "p0", 3)
        first = c.router.bindings[affinity]
        reps.dead.add(first)  # the replica dies (connections refused; an external one is waited for)
        await run_problem_with(c, affinity, 5)
        other = B if first == A else A
        after = [h for h, k in reps.hits[6:]]
        assert after and set(after) == {other}  # every later request on the survivor
        assert c.router.bindings[affinity] == other
        assert c.router.moves["down"] >= 1
        reps.dead.clear()  # the old replica comes back: the problem does not move back
        await asyncio.sleep(0.5)
        await run_problem_with(c, affinity, 3)
        assert {h for h, _ in reps.hits[-6:]} == {other}
    assert any(e["event"] == "outage" and e["endpoint"] == first for e in events)
    assert any(e["event"] == "reissued" and e["problem"] == "p0" for e in events)
    moved = [e for e in events if e["event"] == "moved"]
    assert len(moved) == 1 and moved[0]["problem"] == "p0" and moved[0]["endpoint"] == first
    assert moved[0]["to"] != first and moved[0]["reason"] == "down"


async def run_problem_with(c: VLLMClient, affinity: Affinity, requests: int) -> None:
    problem_affinity.set(affinity)
    for _ in range(requests):
        await asyncio.gather(c.complete([1, 2]), c.complete([1, 2, 3]))


def test_a_saturated_replica_loses_the_problem_and_the_bound_has_a_floor():
    router = Router("tree", rebind_factor=2.0, rebind_min=4)
    live = [Rep(A), Rep(B)]
    p = Affinity("p")
    first = router.pick(live, {A: 0, B: 0}, p).name
    other = B if first == A else A
    # under the bound: stays (3 in flight vs none elsewhere is below rebind_min)
    assert router.pick(live, {first: 3, other: 0}, p).name == first
    # 5 vs 4: mean 4.5, not twice the mean: stays
    assert router.pick(live, {first: 5, other: 4}, p).name == first
    assert router.moves == {"down": 0, "saturated": 0}
    # 8 vs 0: 8 >= 2 x 4 and >= 4: moves, and stays moved
    assert router.pick(live, {first: 8, other: 0}, p).name == other
    assert router.last_move == (first, "saturated")
    assert router.pick(live, {first: 0, other: 1}, p).name == other
    assert router.moves == {"down": 0, "saturated": 1}


def test_one_live_replica_is_never_saturated_and_dead_binding_moves():
    router = Router("tree")
    p = Affinity("p")
    assert router.pick([Rep(A), Rep(B)], {}, p).name in (A, B)
    bound = router.bindings[p]
    survivor = B if bound == A else A
    assert router.pick([Rep(survivor)], {survivor: 100}, p).name == survivor
    assert router.moves["down"] == 1


def test_new_bindings_go_to_fewest_open_trees_and_closed_ones_are_dropped():
    router = Router("tree")
    live = [Rep(A), Rep(B)]
    ps = [Affinity(f"p{i}") for i in range(4)]
    names = [router.pick(live, {}, p).name for p in ps]
    assert sorted(names) == [A, A, B, B]
    for p in ps:
        if router.bindings[p] == A:
            p.open = False
    assert router.trees() == {B: 2}
    assert router.pick(live, {}, Affinity("new")).name == A  # A has no open tree now


def test_requests_without_a_problem_go_to_the_least_loaded():
    router = Router("tree")
    assert router.pick([Rep(A), Rep(B)], {A: 3, B: 1}, None).name == B
    assert not router.bindings


@pytest.mark.parametrize("kw", [{"mode": "x"}, {"rebind_factor": 1.0}, {"rebind_min": 0}])
def test_bad_settings_are_refused_naming_the_field(kw):
    with pytest.raises(ConfigError):
        Router(**kw)


def test_finished_problems_bindings_are_dropped_as_they_pile_up():
    router, live = Router("tree"), [Rep("a"), Rep("b")]
    for i in range(1000):  # one problem at a time: each finishes before the next starts
        affinity = Affinity(f"p{i}")
        router.pick(live, {"a": 0, "b": 0}, affinity)
        affinity.open = False
    assert len(router.bindings) <= 64  # pruned whenever they reach twice what was open, at least 64
    assert router.trees() == {}  # none of them is open
