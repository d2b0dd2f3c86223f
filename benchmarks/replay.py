"""The server's ceiling for a search's own requests (``ponder bench parallel``, issue 28).

A probe measures a server on requests of its own (short prompts, fixed lengths); a search sends
others (prompts of hundreds of tokens sharing prefixes, short steps ended by a stop string,
``n`` > 1). :func:`recorded_requests` keeps the requests a run sends, and :func:`replay_ceiling`
sends them again with no dependencies between them, so a run's share of that ceiling is the
scheduler's fill alone, apart from what its request mix costs the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from benchmarks.search_runs import RunMeasure


@contextlib.contextmanager
def recorded_requests() -> Iterator[list[dict[str, Any]]]:
    """Records the body of every ``/v1/completions`` request any ``VLLMClient`` sends while open
    (the run's own requests, for :func:`replay_ceiling`). The client's ``request`` is wrapped
    for the duration, in this process only, and restored after."""
    from models.client import VLLMClient

    seen: list[dict[str, Any]] = []
    original = VLLMClient.request

    async def request(self: VLLMClient, method: str, path: str, payload: Mapping[str, Any] | None = None,
                      **kw: Any) -> Any:
        if path == "/v1/completions" and payload is not None:
            seen.append(dict(payload))
        return await original(self, method, path, payload, **kw)

    VLLMClient.request = request  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        VLLMClient.request = original  # type: ignore[method-assign]


@dataclasses.dataclass(frozen=True)
class Ceiling:
    """What the server made of a run's own requests sent with no dependencies between them."""

    sequences: int
    """Sequences kept in flight (the sum of the requests' ``n``)."""
    tokens_per_second: float
    """Generated tok/s (the server's counter) over the window after the warm-up."""
    requests: int
    """Requests sent (cycling through the recorded ones)."""
    window_s: float


async def replay_ceiling(client: Any, payloads: Sequence[Mapping[str, Any]], sequences: int,
                         seconds: float = 30.0, warmup_s: float = 5.0) -> Ceiling:
    """The server's saturated tok/s *for these requests*: the recorded ``payloads`` sent again in
    their order (cycling), independent of each other, ``sequences`` sequences in flight at all
    times (a request of ``n`` takes ``n`` places), for ``warmup_s + seconds``; the rate is the
    server's generated-token counter over the last ``seconds`` (no ramp, no drain: requests still
    running at the end are cancelled). A search's requests differ from the probe's (short steps
    ended by a stop string, prompts of hundreds of tokens sharing prefixes, ``n`` > 1), so this is
    the ceiling a search run of the same requests could reach if nothing waited on anything."""
    from benchmarks.metrics import GENERATED, counter_delta
    from benchmarks.search_runs import reset_prefix_cache, snapshot

    if not payloads:
        raise ValueError("replay_ceiling: no recorded requests")
    if sequences < 1:
        raise ValueError(f"replay_ceiling: sequences={sequences} must be >= 1")
    await reset_prefix_cache(client)
    free = asyncio.Semaphore(sequences)
    tasks: set[asyncio.Task[None]] = set()
    sent = 0

    async def one(payload: Mapping[str, Any], n: int) -> None:
        try:
            await client.request("POST", "/v1/completions", payload)
        finally:
            for _ in range(n):
                free.release()

    async def feed() -> None:
        nonlocal sent
        while True:
            payload = payloads[sent % len(payloads)]
            n = min(int(payload.get("n", 1)), sequences)
            for _ in range(n):
                await free.acquire()
            sent += 1
            task = asyncio.create_task(one(payload, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    feeder = asyncio.create_task(feed())
    try:
        await asyncio.sleep(warmup_s)
        before, t0 = await snapshot(client), time.perf_counter()
        await asyncio.sleep(seconds)
        after, t1 = await snapshot(client), time.perf_counter()
    finally:
        feeder.cancel()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(feeder, *tasks, return_exceptions=True)
    return Ceiling(sequences, counter_delta(before, after, GENERATED) / (t1 - t0), sent, t1 - t0)


def ceiling_lines(label: str, ceiling: Ceiling, m: RunMeasure, saturated: float) -> list[str]:
    """The replay's ceiling beside the probe's and the run's share of each."""
    return [f"    replay of [{label}]'s own {len(m.rows)} problems' requests, no dependencies, "
            f"{ceiling.sequences} sequences in flight, {ceiling.window_s:.0f} s window ({ceiling.requests} requests "
            f"sent): {ceiling.tokens_per_second:.1f} tok/s = {ceiling.tokens_per_second / saturated:.2f} of the "
            f"probe's saturated; the run made {m.tok_per_s:.1f} = "
            f"{m.tok_per_s / max(ceiling.tokens_per_second, 1e-9):.2f} of this ceiling"]
