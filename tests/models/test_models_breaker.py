"""The circuit breaker shared by all trees (issue 8 §1): outages, restarts, waiting, limits."""

import asyncio
import time

import httpx
import pytest

from models.breaker import CircuitBreaker
from models.client import VLLMClient
from search.protocols import ConfigError, EngineFault

EP = "http://srv:1"


def reply() -> dict:
    return {"choices": [{"index": 0, "text": "ok", "token_ids": [5], "finish_reason": "stop",
                         "stop_reason": None, "logprobs": None}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


class FakeServer:
    """Answers while ``alive``; a request arriving as request number ``kill_at`` kills it
    (the connection dies under that request, as with SIGKILL)."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.alive = True
        self.kill_at = kill_at
        self.completions = 0
        self.restarts = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if not self.alive:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/health":
            return httpx.Response(200)
        self.completions += 1
        if self.completions == self.kill_at:
            self.alive = False
            raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)
        await asyncio.sleep(0.01)
        return httpx.Response(200, json=reply())

    async def restart(self) -> str:
        await asyncio.sleep(0.05)
        self.restarts += 1
        self.alive = True
        return EP


def client_for(server: FakeServer, **kw) -> VLLMClient:
    kw.setdefault("backoff_s", 0.001)
    return VLLMClient([EP], "m", transport=httpx.MockTransport(server.handler), **kw)


async def test_owned_server_is_restarted_and_every_request_is_reissued():
    server = FakeServer(kill_at=5)
    events = []
    async with client_for(server, restart_fns={EP: server.restart}, on_event=events.append) as client:
        replies = await asyncio.gather(*(client.complete([1]) for _ in range(16)))
        assert all(r.choices[0].text == "ok" for r in replies)  # nothing lost, nothing errored
        assert client.breaker.stats() == {"outages": 1, "restarts": 1} and server.restarts == 1
        assert client.breaker.outage_seconds() >= 0.05  # the restart's duration
    assert [e["event"] for e in events if e["event"] != "reissued"] == ["outage", "restart", "recovered"]
    assert 1 <= sum(e["event"] == "reissued" for e in events) <= 16  # the requests the dead server held
    breaker_events = [e for e in events if e["event"] != "reissued"]
    assert breaker_events[0]["endpoint"] == EP and "RemoteProtocolError" in breaker_events[0]["cause"]
    assert breaker_events[2]["restarted"] is True


async def test_restart_limit_is_an_engine_fault_naming_the_endpoint():
    server = FakeServer(kill_at=1)
    async with client_for(server, restart_fns={EP: server.restart}, max_restarts=0) as client:
        with pytest.raises(EngineFault) as e:
            await client.complete([1])
    assert e.value.endpoint == EP and "restart limit" in e.value.cause and server.restarts == 0


async def test_a_restarted_server_that_does_not_answer_is_an_engine_fault():
    server = FakeServer(kill_at=1)

    async def broken_restart() -> str:
        return EP  # "started", but it never answers

    async with client_for(server, restart_fns={EP: broken_restart}) as client:
        with pytest.raises(EngineFault) as e:
            await client.complete([1])
    assert "does not answer" in e.value.cause and client.breaker.restarts == 1


async def test_external_endpoint_is_waited_for_until_it_returns():
    server = FakeServer(kill_at=2)

    async def come_back():
        while server.alive:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        server.alive = True

    async with client_for(server, outage_timeout_s=5) as client:
        back = asyncio.create_task(come_back())
        started = time.perf_counter()
        replies = await asyncio.gather(*(client.complete([1]) for _ in range(4)))
        await back
        assert len(replies) == 4 and time.perf_counter() - started >= 0.3
        assert client.breaker.stats() == {"outages": 1, "restarts": 0}
        assert client.breaker.outage_seconds() >= 0.25


async def test_other_endpoints_take_the_load_while_one_is_down():
    server_a, server_b = FakeServer(kill_at=1), FakeServer()
    routes = {"a": server_a, "b": server_b}

    async def handler(request):
        return await routes[request.url.host].handler(request)

    async with VLLMClient(["http://a:1", "http://b:1"], "m", transport=httpx.MockTransport(handler),
                          outage_timeout_s=60) as client:
        replies = await asyncio.gather(*(client.complete([1]) for _ in range(10)))
        assert len(replies) == 10 and client.breaker.outage_seconds() == 0.0  # never all down
        assert [s.name for s in client.breaker.live()] == ["http://b:1"]
    assert server_b.completions >= 9


async def test_a_report_from_before_the_last_recovery_is_ignored():
    async def healthy(url):
        return True

    breaker = CircuitBreaker([EP], healthy)
    state = breaker.states[EP]
    old = state.generation
    breaker.report(state, old, "reset")
    await state.recovery
    assert state.up and breaker.outages == 1
    breaker.report(state, old, "stale connection of the old server")  # sent before the recovery
    assert state.up and breaker.outages == 1


def test_breaker_settings_are_validated():
    async def probe(url):
        return True

    with pytest.raises(ConfigError, match="max_restarts"):
        CircuitBreaker([EP], probe, max_restarts=-1)
    with pytest.raises(ConfigError, match="restart_fns"):
        CircuitBreaker([EP], probe, restart_fns={"http://other:1": probe})
