"""VLLMClient / VLLMPolicy without a server: reply parsing, retries, errors, endpoint spreading.

Error paths use ``httpx.MockTransport`` (a scripted HTTP layer); the real server is exercised
in tests/integration.
"""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

from models.client import (
    VLLMClient,
    finish_reason,
    normalize_endpoint,
    parse_completion,
    served_model,
)
from models.policy import VLLMPolicy
from search.protocols import (
    ConfigError,
    EngineFault,
    ModelServerError,
    Policy,
    Sampling,
)

EP = "http://a:1"


def reply(choices: list[dict], usage: dict | None = None) -> dict:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "m",
        "choices": choices,
        "usage": usage or {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
    }


def choice(index: int = 0, text: str = "ab\n\n", token_ids=(5, 6, 7), finish: str = "stop",
           stop="\n\n", logprobs: dict | None = None) -> dict:
    return {"index": index, "text": text, "token_ids": list(token_ids), "finish_reason": finish,
            "stop_reason": stop, "logprobs": logprobs}


def ok_body() -> dict:
    return reply([choice()])


def make_client(handler, endpoints=(EP,), **kw) -> VLLMClient:
    kw.setdefault("backoff_s", 0.001)
    kw.setdefault("backoff_max_s", 0.002)
    return VLLMClient(list(endpoints), "m", transport=httpx.MockTransport(handler), **kw)


@pytest.mark.parametrize(
    ("raw_finish", "raw_stop", "expected"),
    [
        ("stop", "\n\n", ("stop", "\n\n")),
        ("stop", None, ("eos", None)),
        ("stop", 2, ("eos", None)),  # a stop_token_ids token is an end of sequence
        ("length", None, ("length", None)),
        ("abort", None, ("error", None)),
        (None, None, ("error", None)),
    ],
)
def test_finish_reason_mapping(raw_finish, raw_stop, expected):
    assert finish_reason(raw_finish, raw_stop) == expected


def test_parse_completion_reads_tokens_logprobs_usage_and_cached_tokens():
    body = reply(
        [
            choice(1, "x", (9,), "length", None,
                   {"token_logprobs": [-0.5], "tokens": ["x"], "top_logprobs": [{"x": -0.5}]}),
            choice(0, "ab\n\n", (5, 6, 7), "stop", "\n\n",
                   {"token_logprobs": [-1.0, -2.0, -0.25], "tokens": ["a", "b", "\n\n"],
                    "top_logprobs": [{"a": -1.0}, {"b": -2.0}, {"\n\n": -0.25}]}),
        ],
        {"prompt_tokens": 40, "completion_tokens": 4, "total_tokens": 44,
         "prompt_tokens_details": {"cached_tokens": 32}},
    )
    c = parse_completion(body, endpoint=EP, wall_seconds=1.5)
    first, second = c.choices  # sorted by index
    assert (first.text, first.token_ids, first.logprobs) == ("ab\n\n", (5, 6, 7), (-1.0, -2.0, -0.25))
    assert (first.finish_reason, first.stop_reason) == ("stop", "\n\n")
    assert (second.finish_reason, second.stop_reason) == ("length", None)
    assert first.top_logprobs[2] == {"\n\n": -0.25}
    u = c.usage
    assert (u.prompt_tokens, u.generated_tokens, u.cached_prompt_tokens, u.calls, u.wall_seconds) == (
        40, 4, 32, 1, 1.5)


def test_parse_completion_token_id_keys():
    body = reply([choice(logprobs={"token_logprobs": [-0.1], "tokens": ["token_id:27"],
                                   "top_logprobs": [{"token_id:27": -0.1, "token_id:29": -3.0}]})])
    c = parse_completion(body, tokens_as_ids=True)
    assert c.choices[0].top_logprobs[0] == {27: -0.1, 29: -3.0}


def test_parse_completion_without_details_reports_zero_cached():
    assert parse_completion(ok_body()).usage.cached_prompt_tokens == 0


@pytest.mark.parametrize("body", [{}, {"choices": [{"text": "x", "finish_reason": "stop"}]},
                                  {"choices": "nope"}])
def test_malformed_reply_is_a_permanent_error(body):
    with pytest.raises(ModelServerError) as e:
        parse_completion(body, endpoint=EP)
    assert not e.value.retryable


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("localhost:8000", "http://localhost:8000"), ("http://h:1/v1/", "http://h:1"),
     ("https://h/x/v1", "https://h/x")],
)
def test_normalize_endpoint(raw, expected):
    assert normalize_endpoint(raw) == expected


@pytest.mark.parametrize("kwargs", [{"endpoints": []}, {"timeout": 0}, {"max_retries": -1},
                                    {"max_connections": 0}])
def test_client_settings_validated(kwargs):
    args = {"endpoints": [EP], "model": "m", **kwargs}
    with pytest.raises(ConfigError):
        VLLMClient(**args)


async def test_retries_503_then_succeeds():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        return httpx.Response(200, json=ok_body())

    async with make_client(handler, max_retries=3) as client:
        c = await client.complete([1, 2, 3])
    assert len(calls) == 3
    assert c.choices[0].text == "ab\n\n"


async def test_400_raises_at_once_naming_endpoint_and_cause():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400, json={"error": {"message": "max_tokens is too large"}})

    async with make_client(handler, max_retries=5) as client:
        with pytest.raises(ModelServerError) as e:
            await client.complete([1])
    assert len(calls) == 1
    err = e.value
    assert not err.retryable
    assert err.endpoint.startswith(EP) and "/v1/completions" in err.endpoint
    assert "400" in err.cause and "max_tokens is too large" in err.cause


async def test_failure_that_persists_on_a_live_server_is_an_engine_fault():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(200)
        calls.append(request)
        return httpx.Response(500, text="boom")

    async with make_client(handler, max_retries=2) as client:
        with pytest.raises(EngineFault) as e:
            await client.complete([1])
    assert len(calls) == 3 * 3  # three rounds of 1 + 2 retries, the breaker's probe passing between
    assert e.value.endpoint == EP and "500" in e.value.cause and "live server" in e.value.cause
    assert client.breaker.outages == 2 and client.breaker.restarts == 0


async def test_connect_error_waits_for_the_endpoint_then_is_an_engine_fault():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectError("connection refused", request=request)

    async with make_client(handler, max_retries=1, outage_timeout_s=0.3) as client:
        with pytest.raises(EngineFault) as e:
            await client.complete([1])
    assert calls[0] == "/v1/completions" and calls.count("/v1/completions") == 1  # not re-sent blindly
    assert calls.count("/health") >= 2  # probed with backoff until the outage limit
    assert e.value.endpoint == EP and "ConnectError" in e.value.cause and "outage_timeout_s" in e.value.cause


async def test_unreachable_real_port_is_an_engine_fault_naming_it():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = VLLMClient(f"http://127.0.0.1:{port}", "m", max_retries=1, backoff_s=0.001, outage_timeout_s=0.2)
    async with client:
        with pytest.raises(EngineFault) as e:
            await client.complete([1])
    assert f"127.0.0.1:{port}" in str(e.value)


async def test_requests_spread_round_robin_across_endpoints():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(200, json=ok_body())

    async with make_client(handler, endpoints=("http://a:1", "http://b:1", "http://c:1")) as client:
        for _ in range(9):
            await client.complete([1])
    assert sorted(seen) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3


async def test_concurrent_requests_go_to_least_loaded_endpoint():
    release = asyncio.Event()
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        await release.wait()
        return httpx.Response(200, json=ok_body())

    async with make_client(handler, endpoints=("http://a:1", "http://b:1")) as client:
        tasks = [asyncio.create_task(client.complete([1])) for _ in range(6)]
        while len(seen) < 6:
            await asyncio.sleep(0.001)
        assert client._in_flight == {"http://a:1": 3, "http://b:1": 3}
        release.set()
        await asyncio.gather(*tasks)
    assert client._in_flight == {"http://a:1": 0, "http://b:1": 0}


async def test_retry_moves_to_the_other_endpoint():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=ok_body())

    async with make_client(handler, endpoints=("http://down:1", "http://up:1"), max_retries=2) as client:
        for _ in range(4):
            await client.complete([1])
        assert [s.name for s in client.breaker.live()] == ["http://up:1"]  # down is out of rotation
    assert seen.count("up") == 4  # every request ended on the healthy endpoint
    assert seen.count("down") <= 2  # one request found it down, then only the breaker's probes


async def test_policy_sends_token_ids_and_vllm_sampling_names():
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=reply([
            choice(0, "a\n\n", (5, 6), "stop", "\n\n",
                   {"token_logprobs": [-1.0, -0.5], "tokens": ["a", "\n\n"], "top_logprobs": [{}, {}]}),
            choice(1, "b", (7, 2), "stop", None,
                   {"token_logprobs": [-0.1, -0.2], "tokens": ["b", ""], "top_logprobs": [{}, {}]}),
        ]))

    async with make_client(handler) as client:
        policy = VLLMPolicy(client)
        assert isinstance(policy, Policy)
        sampling = Sampling(n=2, temperature=0.9, top_p=0.95, max_tokens=32, stop=("\n\n",),
                            include_stop_str_in_output=True, logprobs=0, seed=7)
        gen = await policy.propose((1, 2, 3), sampling)
    body = bodies[0]
    assert body["prompt"] == [1, 2, 3]
    assert {k: body[k] for k in ("n", "temperature", "top_p", "max_tokens", "stop",
                                 "include_stop_str_in_output", "logprobs", "seed", "return_token_ids")} == {
        "n": 2, "temperature": 0.9, "top_p": 0.95, "max_tokens": 32, "stop": ["\n\n"],
        "include_stop_str_in_output": True, "logprobs": 0, "seed": 7, "return_token_ids": True}
    a, b = gen.proposals
    assert (a.text, a.token_ids, a.logprobs, a.finish_reason, a.stop_reason) == (
        "a\n\n", (5, 6), (-1.0, -0.5), "stop", "\n\n")
    assert (b.finish_reason, b.stop_reason) == ("eos", None)
    assert gen.usage.calls == 1 and gen.usage.prompt_tokens == 4


async def test_policy_without_logprobs_omits_the_field():
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=ok_body())

    async with make_client(handler) as client:
        gen = await VLLMPolicy(client).propose([1], Sampling(logprobs=None))
    assert "logprobs" not in bodies[0] and "seed" not in bodies[0]
    assert gen.proposals[0].logprobs == ()


async def test_served_model_reads_first_model(monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/models"
        return httpx.Response(200, json={"data": [{"id": "smol"}, {"id": "other"}]})

    real = httpx.AsyncClient

    def patched(*args, **kwargs):
        kwargs["transport"] = httpx.MockTransport(handler)
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", patched)
    assert await served_model("http://x:1") == "smol"


def test_one_client_serves_successive_event_loops():
    client = make_client(lambda r: httpx.Response(200, json=ok_body()))
    for _ in range(2):  # e.g. two asyncio.run calls from a synchronous CLI
        assert asyncio.run(client.complete([1])).choices[0].text == "ab\n\n"
    asyncio.run(client.aclose())


async def test_policy_derives_text_offsets_locally_when_the_server_sends_none():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=reply([choice(0, "ab\n\ncd", (1, 2, 3), "stop", None),
                                               choice(1, "zz", (4,), "stop", None)]))

    def decode(ids):  # token 1 -> "ab", 2 -> "\n\n", 3 -> "cd"; token 4 decodes differently
        pieces = {1: "ab", 2: "\n\n", 3: "cd", 4: "y"}
        texts = [pieces[i] for i in ids]
        return "".join(texts), tuple(sum(len(t) for t in texts[:k]) for k in range(len(texts)))

    async with make_client(handler) as client:
        policy = VLLMPolicy(client, decode)
        gen = await policy.propose([9], Sampling(n=2, logprobs=None))
    a, b = gen.proposals
    assert a.text_offsets == (0, 2, 4)
    assert b.text_offsets == () and policy.offset_mismatches == 1  # never offsets into another text
