"""Warming a model server up before a command's clock starts.

A vLLM server that just started answers its first requests slowly: the CPU kernels for each
new batch shape are set up on first use, and the first prompts fill an empty prefix cache.
A run whose clock started with the server would charge that to its first problems (the
demo's first problems took ~32 s each, at 12 tok/s). :func:`warm_up` sends a few short
requests through the path a search uses (token-id prompts of the run's own chat template,
several sequences per request, a few requests at once) to every endpoint, so that cost is
paid, and reported, before the search begins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from models.client import VLLMClient
from models.server import ProgressFn

WARM_UP_ROUNDS = ((1, 1), (4, 2))
"""(requests at once, sequences per request) of each round: one sequence alone, then a batch
of several requests of several sequences (the shapes a search sends); every round asks for
``WARM_UP_TOKENS`` tokens per sequence (72 tokens in all: seconds even on a busy CPU)."""
WARM_UP_TOKENS = 8


async def warm_up(client: VLLMClient, prompt: Sequence[int], *, on_progress: ProgressFn | None = None,
                  rounds: Sequence[tuple[int, int]] = WARM_UP_ROUNDS, max_tokens: int = WARM_UP_TOKENS) -> float:
    """Sends short sampled completions of ``prompt`` to each of ``client``'s endpoints, round
    by round, and returns the seconds it took.

    Args:
        client: The policy's client (requests go through its retries and breaker).
        prompt: Token ids shaped like a search's prompts (the chat template around a short
            question, with the run's system prompt: its blocks stay in the prefix cache).
        on_progress: Told when the warm-up starts and how long it took.
        rounds: (requests at once, sequences per request) per round.
        max_tokens: Tokens per sequence.
    """
    started = time.perf_counter()
    if on_progress is not None:
        count = sum(k for k, _ in rounds) * len(client.endpoints)
        on_progress(f"warming up the server ({count} short requests)")
    for endpoint in client.endpoints:
        for at_once, n in rounds:
            await asyncio.gather(*(client.complete(prompt, n=n, max_tokens=max_tokens, temperature=1.0,
                                                   logprobs=None, endpoint=endpoint) for _ in range(at_once)))
    seconds = time.perf_counter() - started
    if on_progress is not None:
        on_progress(f"warmed up in {seconds:.1f} s")
    return seconds
