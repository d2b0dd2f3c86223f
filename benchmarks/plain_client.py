"""The reference side of ``ponder bench flat``: a bare asyncio + httpx client, no ponder code.

It sends ponder's flat-method requests (one ``/v1/completions`` per problem: the prompt's
token ids, ``n`` samples, no stop strings) with ``concurrency`` problems at once, and counts
the tokens the server says it generated. Nothing is parsed, split, scored or verified, so its
tok/s is what any client gets from the server for this load.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from search.protocols import ModelServerError


@dataclasses.dataclass(frozen=True)
class PlainRun:
    """What the plain client sent and got back."""

    generated_tokens: int
    """Sum of the replies' ``usage.completion_tokens`` (all ``n`` samples)."""
    calls: int
    wall_seconds: float

    @property
    def tok_per_s(self) -> float:
        """Generated tokens per wall-clock second."""
        return self.generated_tokens / self.wall_seconds if self.wall_seconds > 0 else 0.0


def completion_request(model: str, prompt: Sequence[int], *, n: int, max_tokens: int, temperature: float,
                       top_p: float, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of one request: a whole solution, ``n`` samples, ``stop=[]``."""
    return {"model": model, "prompt": list(prompt), "n": n, "max_tokens": max_tokens,
            "temperature": temperature, "top_p": top_p, "stop": [], **(extra or {})}


async def run_plain(endpoint: str, model: str, prompts: Sequence[Sequence[int]], *, n: int, max_tokens: int,
                    temperature: float, top_p: float, concurrency: int, extra: Mapping[str, Any] | None = None,
                    timeout_s: float = 300.0, transport: httpx.AsyncBaseTransport | None = None) -> PlainRun:
    """Sends one request per prompt, ``concurrency`` workers each sending its next one when
    the last is answered (as ponder's ``max_concurrent_problems`` coroutines do).

    Args:
        endpoint: Base URL of the server (``http://host:port``).
        extra: Further request fields (e.g. the ones ponder adds: ``logprobs``).
        transport: An httpx transport to use instead of the network (tests).

    Raises:
        ModelServerError: no answer, an HTTP error status, or a reply without ``usage`` (no retries).
    """
    queue = iter(prompts)
    totals = {"tokens": 0, "calls": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=endpoint, timeout=timeout_s, limits=limits, transport=transport) as http:

        async def worker() -> None:
            for prompt in queue:
                body = completion_request(model, prompt, n=n, max_tokens=max_tokens, temperature=temperature,
                                          top_p=top_p, extra=extra)
                try:
                    reply = (await http.post("/v1/completions", json=body)).raise_for_status()
                    totals["tokens"] += int(reply.json()["usage"]["completion_tokens"])
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
                    raise ModelServerError(endpoint, f"{type(err).__name__}: {str(err)[:300]}",
                                           retryable=False) from err
                totals["calls"] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(max(concurrency, 1))))
        wall = time.perf_counter() - start
    return PlainRun(totals["tokens"], totals["calls"], wall)
