"""The fake OpenAI-compatible server (benchmarks/fake_server.py) against the real client."""

from __future__ import annotations

from benchmarks.fake_server import start_fake
from benchmarks.server import PREFIX_HITS, PREFIX_QUERIES, parse_metrics
from models.client import VLLMClient
from models.server import ServerSettings, terminate


async def test_fake_replies_parse_as_vllm_s_and_count_prefix_hits(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    rec = start_fake(ServerSettings())
    try:
        async with VLLMClient(rec.endpoint, "fake") as client:
            prompt = list(range(100, 140))  # 40 tokens: two whole 16-token blocks
            first = await client.complete(prompt, n=2, max_tokens=3)
            again = await client.complete(prompt + [7], n=1, max_tokens=3)
            assert len(first.choices) == 2 and len(first.choices[0].token_ids) == 3
            assert first.choices[0].text.endswith("\n\n") and first.choices[0].finish_reason == "stop"
            assert first.usage.cached_prompt_tokens == 0 and again.usage.cached_prompt_tokens == 32
            m = parse_metrics(await client.metrics())
            assert m[PREFIX_QUERIES] == 81 and m[PREFIX_HITS] == 32
    finally:
        terminate(rec.pid, timeout=5)
