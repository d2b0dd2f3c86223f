"""The fake replica (benchmarks.fake_server) beside a real vLLM server (the embedded model): the
same request to both, the fake's reply shaped as vLLM's (every field it sends is vLLM's, of the
same JSON type) and parsed alike by the real client (issue 26 §5)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.driver import step_pool
from benchmarks.fake_server import Replica, start_fake
from models.client import VLLMClient, parse_completion
from models.server import ServerSettings, terminate

pytestmark = pytest.mark.integration


def kind(value: Any) -> str:
    return "null" if value is None else {bool: "bool", int: "number", float: "number", str: "string",
                                         list: "array", dict: "object"}[type(value)]


def differences(fake: Any, real: Any, at: str = "") -> list[str]:
    """Where the fake's JSON has a field vLLM's lacks, or of another type (null matches anything)."""
    if fake is None or real is None:
        return []
    if kind(fake) != kind(real):
        return [f"{at}: {kind(fake)} vs {kind(real)}"]
    if isinstance(fake, dict) and at.endswith("top_logprobs[0]"):  # token -> logprob: keys are tokens
        return differences(next(iter(fake.values()), None), next(iter(real.values()), None), at + "[token]")
    if isinstance(fake, dict):
        return [d for k, v in fake.items()
                for d in ([f"{at}.{k}: not in vLLM's reply"] if k not in real else differences(v, real[k], f"{at}.{k}"))]
    if isinstance(fake, list) and fake and real:
        return differences(fake[0], real[0], at + "[0]")
    return []


@pytest.mark.parametrize("logprobs", [None, 0])
async def test_the_fake_replies_as_vllm_does(embedded_client, embedded_tokenizer, tmp_path, monkeypatch, logprobs):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    pool = step_pool(embedded_tokenizer, tmp_path / "steps.json", size=40)
    rec = start_fake(ServerSettings(), replica=Replica(tokens_per_s=1e5, latency_s=0.0, steps_file=str(pool)))
    prompt = embedded_tokenizer.chat_prompt("What is 12 + 30 + 7?")
    payload = {"prompt": prompt, "n": 2, "max_tokens": 48, "temperature": 0.8, "stop": ["\n\n"],
               "include_stop_str_in_output": True, "return_token_ids": True, "seed": 3}
    if logprobs is not None:
        payload["logprobs"] = logprobs
    try:
        async with VLLMClient(rec.endpoint, "fake") as fake_client:
            fake, _, _ = await fake_client.request("POST", "/v1/completions", {**payload, "model": "fake"})
        real, _, _ = await embedded_client.request("POST", "/v1/completions",
                                                   {**payload, "model": embedded_client.model})
    finally:
        terminate(rec.pid, timeout=5)
    assert differences(fake, real) == []
    for body in (fake, real):
        c = parse_completion(body)
        assert len(c.choices) == 2 and c.usage.prompt_tokens == len(prompt)
        assert c.usage.generated_tokens == sum(len(ch.token_ids) for ch in c.choices)
        for ch in c.choices:
            assert ch.finish_reason in ("stop", "eos", "length")
            assert len(ch.logprobs) == (len(ch.token_ids) if logprobs is not None else 0)
            assert len(ch.text_offsets) == (len(ch.token_ids) if logprobs is not None else 0)
            assert embedded_tokenizer.decode(ch.token_ids).startswith(ch.text)  # the ids carry the text
