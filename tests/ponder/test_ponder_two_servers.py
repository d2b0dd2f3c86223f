"""A policy server and a separate PRM server: both managed (started, restartable, stopped)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import pytest

import ponder.engine as engine
from ponder.config import ModelConfig, RewardConfig
from ponder_fakes import CharTokenizer
from search.protocols import ConfigError


@dataclasses.dataclass
class FakeRecord:
    checkpoint: str
    model: str


class FakeServer:
    def __init__(self, checkpoint: Path | None, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.record = FakeRecord(str(checkpoint or "/embedded"), f"model-{port}")
        self.stopped = False

    async def restart(self) -> str:
        return self.endpoint


@pytest.mark.parametrize(("kind", "runner"), [("generative_prm", "auto"), ("pooling_prm", "pooling")])
def test_a_prm_checkpoint_gets_its_own_managed_server(monkeypatch, kind, runner):
    started: list[FakeServer] = []
    runners: list[str] = []
    warmed: list[str] = []

    @contextlib.contextmanager
    def ensure_server(checkpoint=None, settings=None, *, on_progress=None):
        runners.append(settings.runner if settings is not None else "auto")
        server = FakeServer(checkpoint, 9000 + len(started))
        started.append(server)
        try:
            yield server
        finally:
            server.stopped = True

    tokenizers: list[Path] = []

    class Tok(CharTokenizer):
        def __init__(self, path):
            tokenizers.append(Path(path))

        def decode_with_offsets(self, ids):
            return "", ()

        def encode(self, text):  # a blank line is one token, as the pooling PRM's separator must be
            return [10] if text == "\n\n" else super().encode(text)

    async def warm_up(client, prompt, *, on_progress=None):
        warmed.extend(client.endpoints)

    monkeypatch.setattr(engine, "ensure_server", ensure_server)
    monkeypatch.setattr(engine, "HFTokenizer", Tok)
    monkeypatch.setattr(engine, "warm_up", warm_up)

    async def go():
        reward = RewardConfig(kind=kind, checkpoint="/ckpt/prm")
        async with engine.open_engine(ModelConfig(), reward) as eng:
            assert [list(c.endpoints) for c in eng.clients] == [["http://127.0.0.1:9000"], ["http://127.0.0.1:9001"]]
            prm = eng.reward_model.reward_model
            assert prm.client is eng.clients[1] and prm.client.model == "model-9001"
            assert eng.reward_model.occupancy is None  # its own server: not in the policy server's fill
            assert [s.restart_fn is not None for s in eng.clients[1].breaker.states.values()] == [True]  # restartable
            assert not any(s.stopped for s in started)
        return eng

    asyncio.run(go())
    assert len(started) == 2 and all(s.stopped for s in started)  # both stopped with the command
    assert tokenizers[-1] == Path("/ckpt/prm")  # the PRM's own tokenizer
    assert runners == ["auto", runner]  # a pooling PRM is served by vLLM's pooling runner
    assert warmed == ["http://127.0.0.1:9000"]  # the policy's server, before the engine was used


def test_self_eval_takes_no_checkpoint():
    with pytest.raises(ValueError, match="self_eval"):
        RewardConfig(kind="self_eval", checkpoint="/x")
    with pytest.raises(ConfigError):
        from ponder.config import parse_run_config

        parse_run_config({"reward": {"kind": "self_eval", "checkpoint": "/x"}})


def test_a_judge_on_the_policys_server_counts_in_its_fill(monkeypatch):
    started: list[FakeServer] = []

    @contextlib.contextmanager
    def ensure_server(checkpoint=None, settings=None, *, on_progress=None):
        started.append(FakeServer(checkpoint, 9000 + len(started)))
        yield started[-1]

    class Tok(CharTokenizer):
        def __init__(self, path):
            pass

        def decode_with_offsets(self, ids):
            return "", ()

    async def warm_up(client, prompt, *, on_progress=None):
        pass

    monkeypatch.setattr(engine, "ensure_server", ensure_server)
    monkeypatch.setattr(engine, "HFTokenizer", Tok)
    monkeypatch.setattr(engine, "warm_up", warm_up)

    async def go(reward):
        async with engine.open_engine(ModelConfig(), reward) as eng:
            return eng.reward_model, eng.policy.occupancy

    for kind in ("self_eval", "generative_prm"):  # no endpoints / checkpoint of its own: the policy's server
        rm, occupancy = asyncio.run(go(RewardConfig(kind=kind)))
        assert rm.occupancy is occupancy
    rm, _ = asyncio.run(go(RewardConfig(kind="symbolic")))  # no server at all
    assert rm.occupancy is None
    assert len(started) == 3  # one policy server per engine, none for a judge
