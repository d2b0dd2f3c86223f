"""The server bench (benchmarks.server) against a scripted server: rows, hit rates, shaped load."""

from __future__ import annotations

import json

import httpx
import pytest

from models.client import VLLMClient
from benchmarks.server import BenchRow, bench_server_async, format_rows, parse_metrics, shaped_load_rate
from search.protocols import ConfigError

METRICS = """\
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1000.0
vllm:prefix_cache_queries_total{engine="1",model_name="m"} 24.0
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 5e+02
vllm:num_requests_running{engine="0",model_name="m"} 3.0
"""


def test_parse_metrics_sums_label_sets():
    m = parse_metrics(METRICS)
    assert m["vllm:prefix_cache_queries_total"] == 1024.0
    assert m["vllm:prefix_cache_hits_total"] == 500.0
    assert m["vllm:num_requests_running"] == 3.0


async def test_bench_rows_from_a_scripted_server():
    state = {"queries": 0.0, "hits": 0.0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return httpx.Response(200, text=(
                f'vllm:prefix_cache_queries_total{{engine="0"}} {state["queries"]}\n'
                f'vllm:prefix_cache_hits_total{{engine="0"}} {state["hits"]}\n'))
        body = json.loads(request.content)
        assert body["ignore_eos"] is True
        n_prompt = len(body["prompt"])
        state["queries"] += n_prompt
        cached = 1024 if n_prompt > 1024 and state["queries"] > n_prompt + 2000 else 0
        state["hits"] += cached
        return httpx.Response(200, json={
            "choices": [{"index": 0, "text": "x", "token_ids": [5] * body["max_tokens"],
                         "finish_reason": "length", "stop_reason": None}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": body["max_tokens"],
                      "prompt_tokens_details": {"cached_tokens": cached}}})

    client = VLLMClient("http://x:1", "m", transport=httpx.MockTransport(handler))
    async with client:
        rows = await bench_server_async(client, (1, 4), max_tokens=8, rounds=2, num_shared=4,
                                        shared_concurrency=2)
    assert [(r.load, r.concurrency, r.requests, r.generated_tokens) for r in rows] == [
        ("throughput", 1, 2, 16), ("throughput", 4, 8, 64), ("shared_prefix", 2, 4, 64)]
    shared = rows[-1]
    assert 0 < shared.prefix_cache_hit_rate < 1
    assert shared.usage_cache_hit_rate == pytest.approx(shared.cached_prompt_tokens / shared.prompt_tokens, abs=1e-4)
    assert "shared_prefix" in format_rows(rows) and isinstance(rows[0], BenchRow)


async def test_shaped_load_shares_a_prefix_and_generates_the_asked_length():
    prompts = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        prompts.append(body["prompt"])
        return httpx.Response(200, json={
            "choices": [{"index": 0, "text": "x", "token_ids": [5] * body["max_tokens"],
                         "finish_reason": "length", "stop_reason": None}],
            "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": body["max_tokens"]}})

    async with VLLMClient("http://x:1", "m", transport=httpx.MockTransport(handler)) as client:
        rate = await shaped_load_rate(client, 40, 8, 6, concurrency=3, requests=5)
        with pytest.raises(ConfigError, match="shape"):
            await shaped_load_rate(client, 40, 41, 6)
    assert rate > 0 and len(prompts) == 1 + 5  # one warm-up request, then the load
    assert all(len(p) == 40 and p[:32] == prompts[0][:32] for p in prompts)
    assert len({tuple(p[32:]) for p in prompts[1:]}) == 5  # unique 8-token tails


def test_bench_server_command_measures_the_served_endpoint(monkeypatch):
    """`ponder bench server` wires the endpoint the engine serves into the bench."""
    import contextlib

    from typer.testing import CliRunner

    import benchmarks.server as bench
    import ponder.engine as engine
    from ponder.cli.main import app

    @contextlib.contextmanager
    def served(model):
        yield engine.Served(endpoints=list(model.endpoints), checkpoint=None, name="m", restart_fns={})

    seen = []

    def fake_bench(endpoint, concurrency, max_tokens):
        seen.append((endpoint, concurrency, max_tokens))
        return [BenchRow(load="throughput", concurrency=c, requests=c, prompt_tokens=0, generated_tokens=c * max_tokens,
                         seconds=1.0, tokens_per_second=c * max_tokens, mean_latency_s=1.0) for c in concurrency]

    monkeypatch.setattr(engine, "model_endpoints", served)
    monkeypatch.setattr(bench, "bench_server", fake_bench)
    result = CliRunner().invoke(app, ["bench", "server", "--endpoint", "http://h:1", "--concurrency", "2",
                                      "--concurrency", "4", "--max-tokens", "8"])
    assert result.exit_code == 0, result.output
    assert seen == [("http://h:1", (2, 4), 8)]
    assert "saturated generated tok/s (max over concurrencies): 32.0" in result.output
