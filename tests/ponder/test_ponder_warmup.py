"""open_engine warms the policy's server up before it yields the engine (a run's clock starts
after), and tells on_progress what the start-up is doing."""

from __future__ import annotations

import asyncio
import contextlib
import types

import models.client
import ponder.engine as engine
from ponder.config import ModelConfig
from ponder_fakes import CharTokenizer


class Tokenizer(CharTokenizer):
    def __init__(self, checkpoint):
        self.checkpoint = checkpoint

    def decode_with_offsets(self, token_ids):
        return self.decode(token_ids), tuple(range(len(token_ids)))


def test_open_engine_warms_up_before_the_engine_is_used(monkeypatch):
    log: list[str] = []

    @contextlib.contextmanager
    def ensure_server(checkpoint, settings=None, *, on_progress=None):
        on_progress("starting a vLLM server for fake")
        log.append("server started")
        yield types.SimpleNamespace(endpoint="http://fake:1", restart=None,
                                    record=types.SimpleNamespace(checkpoint="/ckpt", model="fake"))

    async def complete(self, prompt, **kwargs):
        log.append(f"request n={kwargs['n']} to {kwargs['endpoint']}")
        assert list(prompt) == Tokenizer("/ckpt").chat_prompt(engine.WARM_UP_QUESTION, "sys")

    monkeypatch.setattr(engine, "ensure_server", ensure_server)
    monkeypatch.setattr(engine, "HFTokenizer", Tokenizer)
    monkeypatch.setattr(models.client.VLLMClient, "complete", complete)

    async def go():
        async with engine.open_engine(ModelConfig(system_prompt="sys"), on_progress=log.append) as opened:
            log.append("engine yielded")
            return opened

    asyncio.run(go())
    assert log[:2] == ["starting a vLLM server for fake", "server started"]
    assert log[2].startswith("warming up the server (")
    requests = [x for x in log if x.startswith("request")]
    assert requests and all(x.endswith("to http://fake:1") for x in requests)
    assert log[-2].startswith("warmed up in ") and log[-1] == "engine yielded"
