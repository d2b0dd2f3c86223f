"""Measures a vLLM server: generated tokens per second by concurrency, and prefix-cache reuse.

``ponder bench server`` calls :func:`bench_server`. Two loads:

- **Throughput**: at each concurrency ``c``, ``c`` workers each send ``rounds`` requests
  back to back (a random token-id prompt of ``prompt_tokens`` tokens, ``max_tokens`` tokens
  generated with ``ignore_eos`` so every reply has the same length). Reports generated
  tokens / wall seconds and the mean request latency.
- **Prefix cache**: ``num_shared`` requests sharing one ``shared_prefix_tokens``-token prefix
  (each with its own short suffix, as sibling expansions of a search node are), sent at
  ``shared_concurrency``. The hit rate is read from the server's Prometheus counters
  ``vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total`` (tokens, delta over
  the load) and, independently, from the replies' ``usage.prompt_tokens_details``.

Prompts are token ids drawn from a seeded RNG (ids 1000-29999, valid for any modern vocab),
so no tokenizer is needed and repeated benches see the same prompts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import time
from collections.abc import Sequence

from models.client import VLLMClient, served_model
from search.protocols import ConfigError, ModelServerError

_METRIC_RE = re.compile(r"^(vllm:[a-z_]+)(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.MULTILINE)
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"


@dataclasses.dataclass(frozen=True)
class BenchRow:
    """One measured load."""

    load: str
    """``"throughput"`` or ``"shared_prefix"``."""
    concurrency: int
    requests: int
    prompt_tokens: int
    generated_tokens: int
    seconds: float
    tokens_per_second: float
    """Generated tokens per wall-clock second."""
    mean_latency_s: float
    cached_prompt_tokens: int = 0
    prefix_cache_hit_rate: float | None = None
    """From the server's counters: hit tokens / queried tokens over this load, in [0, 1]."""
    usage_cache_hit_rate: float | None = None
    """From the replies' usage: cached prompt tokens / prompt tokens, in [0, 1]."""

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def parse_metrics(text: str) -> dict[str, float]:
    """Sums each ``vllm:*`` sample over its label sets (engines, models)."""
    totals: dict[str, float] = {}
    for name, value in _METRIC_RE.findall(text):
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def _random_ids(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(1000, 30000) for _ in range(n)]


async def _run_load(client: VLLMClient, prompts: Sequence[list[int]], concurrency: int,
                    max_tokens: int) -> tuple[float, list[float], int, int, int]:
    """Sends ``prompts`` with at most ``concurrency`` in flight.

    Returns ``(seconds, latencies, prompt tokens, generated tokens, cached prompt tokens)``.
    """
    queue: asyncio.Queue[list[int]] = asyncio.Queue()
    for p in prompts:
        queue.put_nowait(p)
    latencies: list[float] = []
    totals = [0, 0, 0]

    async def worker() -> None:
        while True:
            try:
                prompt = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            c = await client.complete(prompt, max_tokens=max_tokens, temperature=0.0,
                                      logprobs=None, extra={"ignore_eos": True})
            latencies.append(time.perf_counter() - started)
            totals[0] += c.usage.prompt_tokens
            totals[1] += c.usage.generated_tokens
            totals[2] += c.usage.cached_prompt_tokens

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, totals[0], totals[1], totals[2]


async def _metrics(client: VLLMClient) -> dict[str, float] | None:
    try:
        return parse_metrics(await client.metrics())
    except ModelServerError:
        return None


async def shaped_load_rate(client: VLLMClient, prompt_tokens: int, uncached_tokens: int, max_tokens: int,
                           *, concurrency: int = 128, requests: int = 256, seed: int = 2) -> float:
    """Generated tok/s of a saturation load shaped like a search: every prompt is one shared
    prefix (warmed into the prefix cache first) followed by ``uncached_tokens`` unique tokens,
    ``prompt_tokens`` in all, and each request generates ``max_tokens`` (``ignore_eos``)."""
    if min(prompt_tokens, max_tokens, concurrency, requests) < 1 or not 0 <= uncached_tokens <= prompt_tokens:
        raise ConfigError("shape", (prompt_tokens, uncached_tokens, max_tokens, concurrency, requests),
                          "needs positive lengths and 0 <= uncached_tokens <= prompt_tokens")
    rng = random.Random(seed)
    shared = _random_ids(rng, prompt_tokens - uncached_tokens)
    prompts = [shared + _random_ids(rng, uncached_tokens) for _ in range(requests)]
    await _run_load(client, prompts[:1], 1, 1)  # the shared prefix enters the cache
    seconds, _, _, generated, _ = await _run_load(client, prompts, concurrency, max_tokens)
    return generated / seconds if seconds > 0 else 0.0


async def bench_server_async(
    client_or_endpoint: VLLMClient | str,
    concurrencies: Sequence[int] = (1, 8, 32, 64),
    max_tokens: int = 128,
    *,
    rounds: int = 2,
    prompt_tokens: int = 32,
    shared_prefix_tokens: int = 1024,
    num_shared: int = 32,
    shared_concurrency: int = 8,
    seed: int = 0,
) -> list[BenchRow]:
    """Runs the throughput loads, then the shared-prefix load; see the module docstring.

    Args:
        client_or_endpoint: A client, or a base URL (the first model it serves is used).
        concurrencies: Requests in flight for each throughput row.
        max_tokens: Tokens generated per throughput request.
        rounds: Requests per worker at each concurrency (>= 2 measures a steady state).
        prompt_tokens: Prompt length of throughput requests.
        shared_prefix_tokens: Length of the shared prefix.
        num_shared: Requests in the shared-prefix load.
        shared_concurrency: Requests in flight during the shared-prefix load.
        seed: Seed of the random prompts.
    """
    if not concurrencies or min(concurrencies) < 1:
        raise ConfigError("concurrencies", list(concurrencies), "must be positive integers")
    if max_tokens < 1 or rounds < 1:
        raise ConfigError("max_tokens/rounds", (max_tokens, rounds), "must be >= 1")
    own = isinstance(client_or_endpoint, str)
    if isinstance(client_or_endpoint, str):
        model = await served_model(client_or_endpoint)
        client = VLLMClient(client_or_endpoint, model=model, max_connections=max(256, max(concurrencies)))
    else:
        client = client_or_endpoint
    rng = random.Random(seed)
    rows: list[BenchRow] = []
    try:
        # Warm-up: the first request after start-up pays one-off costs.
        await _run_load(client, [_random_ids(rng, prompt_tokens)], 1, 8)
        for c in concurrencies:
            prompts = [_random_ids(rng, prompt_tokens) for _ in range(c * rounds)]
            seconds, lat, p_tok, g_tok, cached = await _run_load(client, prompts, c, max_tokens)
            rows.append(BenchRow(
                load="throughput", concurrency=c, requests=len(prompts), prompt_tokens=p_tok,
                generated_tokens=g_tok, seconds=round(seconds, 3),
                tokens_per_second=round(g_tok / seconds, 1), mean_latency_s=round(sum(lat) / len(lat), 3),
                cached_prompt_tokens=cached,
            ))
        shared = _random_ids(rng, shared_prefix_tokens)
        prompts = [shared + _random_ids(rng, 16) for _ in range(num_shared)]
        before = await _metrics(client)
        seconds, lat, p_tok, g_tok, cached = await _run_load(client, prompts, shared_concurrency, 16)
        after = await _metrics(client)
        hit_rate = None
        if before is not None and after is not None:
            queries = after.get(PREFIX_QUERIES, 0.0) - before.get(PREFIX_QUERIES, 0.0)
            hits = after.get(PREFIX_HITS, 0.0) - before.get(PREFIX_HITS, 0.0)
            hit_rate = round(hits / queries, 4) if queries > 0 else None
        rows.append(BenchRow(
            load="shared_prefix", concurrency=shared_concurrency, requests=len(prompts),
            prompt_tokens=p_tok, generated_tokens=g_tok, seconds=round(seconds, 3),
            tokens_per_second=round(g_tok / seconds, 1), mean_latency_s=round(sum(lat) / len(lat), 3),
            cached_prompt_tokens=cached, prefix_cache_hit_rate=hit_rate,
            usage_cache_hit_rate=round(cached / p_tok, 4) if p_tok else None,
        ))
    finally:
        if own:
            await client.aclose()
    return rows


def bench_server(
    client_or_endpoint: VLLMClient | str,
    concurrencies: Sequence[int] = (1, 8, 32, 64),
    max_tokens: int = 128,
    **kwargs: int,
) -> list[BenchRow]:
    """Synchronous :func:`bench_server_async` (runs its own event loop; for the CLI)."""
    if isinstance(client_or_endpoint, VLLMClient):
        # A client's pooled connections belong to the loop they were made in; use a fresh one.
        c = client_or_endpoint
        client_or_endpoint = c.endpoints[0]
        fresh = VLLMClient(c.endpoints, c.model, timeout=c.timeout,
                                   max_retries=c.max_retries, max_connections=max(c.max_connections, 256))

        async def run() -> list[BenchRow]:
            async with fresh:
                return await bench_server_async(fresh, concurrencies, max_tokens, **kwargs)

        return asyncio.run(run())
    return asyncio.run(bench_server_async(client_or_endpoint, concurrencies, max_tokens, **kwargs))


def format_rows(rows: Sequence[BenchRow]) -> str:
    """A plain-text table of ``rows``."""
    lines = [f"{'load':<14}{'conc':>5}{'reqs':>6}{'gen tok':>9}{'sec':>8}{'tok/s':>9}"
             f"{'lat s':>8}{'hit(metrics)':>14}{'hit(usage)':>12}"]
    for r in rows:
        hm = f"{r.prefix_cache_hit_rate:.1%}" if r.prefix_cache_hit_rate is not None else "-"
        hu = f"{r.usage_cache_hit_rate:.1%}" if r.usage_cache_hit_rate is not None else "-"
        lines.append(f"{r.load:<14}{r.concurrency:>5}{r.requests:>6}{r.generated_tokens:>9}"
                     f"{r.seconds:>8.2f}{r.tokens_per_second:>9.1f}{r.mean_latency_s:>8.2f}{hm:>14}{hu:>12}")
    return "\n".join(lines)
