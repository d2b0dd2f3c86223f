"""The warm-up: short requests through the search's own path, to every endpoint, timed."""

from __future__ import annotations

import asyncio

from models.warmup import WARM_UP_ROUNDS, WARM_UP_TOKENS, warm_up


class RecordingClient:
    def __init__(self, endpoints):
        self.endpoints = tuple(endpoints)
        self.calls: list[dict] = []
        self.in_flight = self.peak = 0

    async def complete(self, prompt, **kwargs):
        self.calls.append({"prompt": prompt, **kwargs})
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1


def test_warm_up_sends_the_rounds_to_every_endpoint_with_token_ids():
    client = RecordingClient(["http://a:1", "http://b:2"])
    seen: list[str] = []
    seconds = asyncio.run(warm_up(client, [5, 6, 7], on_progress=seen.append))
    per_endpoint = sum(k for k, _ in WARM_UP_ROUNDS)
    assert len(client.calls) == 2 * per_endpoint
    assert [c["endpoint"] for c in client.calls] == ["http://a:1"] * per_endpoint + ["http://b:2"] * per_endpoint
    assert all(c["prompt"] == [5, 6, 7] and c["max_tokens"] == WARM_UP_TOKENS for c in client.calls)
    assert sorted({c["n"] for c in client.calls}) == sorted({n for _, n in WARM_UP_ROUNDS})
    assert client.peak == max(k for k, _ in WARM_UP_ROUNDS)  # a round's requests go at once
    assert seen == [f"warming up the server ({2 * per_endpoint} short requests)", f"warmed up in {seconds:.1f} s"]
    assert seconds > 0
