"""VLLMClient's connection lanes (one request per keep-alive connection, at most
``max_connections`` per endpoint) against a real HTTP server: the fake replica."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.fake_server import Replica, start_fake
from models.client import VLLMClient
from models.server import ServerSettings, terminate


@pytest.fixture
def slow_fake(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    rec = start_fake(ServerSettings(), replica=Replica(tokens_per_s=1e6, latency_s=0.2))
    yield rec
    terminate(rec.pid, timeout=5)


def connections(text: str) -> float:
    return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("fake:connections"))


async def test_requests_share_at_most_max_connections_and_reuse_them(slow_fake):
    async with VLLMClient(slow_fake.endpoint, "fake", max_connections=5) as client:
        before = connections(await client.metrics())  # start-up's health checks, this metrics pool
        replies = await asyncio.gather(*(client.complete([1, 2, 3, i], max_tokens=2) for i in range(12)))
        assert len(replies) == 12 and all(len(r.choices) == 1 for r in replies)
        (lanes,) = client.pools.lanes.values()
        assert len(lanes) == 5 and all(lane[1] == 0 for lane in lanes)  # capped, all released
        for i in range(3):  # one at a time: a free lane, its connection kept alive
            await client.complete([4, 5, i], max_tokens=2)
        assert len(lanes) == 5
        assert connections(await client.metrics()) - before == 5  # the lanes' only: kept alive


async def test_each_request_in_flight_gets_its_own_lane_below_the_cap(slow_fake):
    async with VLLMClient(slow_fake.endpoint, "fake", max_connections=64) as client:
        await asyncio.gather(*(client.complete([7, i], max_tokens=2) for i in range(9)))
        (lanes,) = client.pools.lanes.values()
        assert len(lanes) == 9
        assert sorted(map(id, client.pools.free[client.endpoints[0]])) == sorted(map(id, lanes))
