"""open_engine warms the policy's server up before it yields the engine (a run's clock starts
after), and tells on_progress what the start-up is doing."""

from __future__ import annotations

import asyncio
import contextlib
import types
from pathlib import Path

import models.client
import ponder.engine as engine
import ponder.run
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
    log = [x for x in log if x != "loading the tokenizer"]  # said only if its thread is not done yet
    assert log[:2] == ["starting a vLLM server for fake", "server started"]
    assert log[2].startswith("warming up the server (")
    requests = [x for x in log if x.startswith("request")]
    assert requests and all(x.endswith("to http://fake:1") for x in requests)
    assert log[-2].startswith("warmed up in ") and log[-1] == "engine yielded"


def test_a_loop_stage_passes_its_servers_and_runs_progress_on(tmp_path, monkeypatch):
    import models.managed
    from ponder.run import RunOutcome
    from ponder.loop import runner
    from ponder.loop.config import LoopConfig
    from search.protocols import Problem
    from verifiers.math import MathVerifier
    from verifiers.tasks import TaskSet

    tasks = {"source": "reasoning_gym", "name": "chain_sum", "size": 2}
    cfg = LoopConfig.model_validate({
        "loop_dir": str(tmp_path), "train_tasks": {**tasks, "seed": 1}, "eval_tasks": {**tasks, "seed": 2},
        "base_policy": str(tmp_path / "base"), "label": {"search": {"algorithm": "cot"}},
        "eval": {"budget": {}, "methods": {"cot": {"algorithm": "cot"}}}})
    log: list[str] = []

    @contextlib.contextmanager
    def ensure_server(checkpoint, settings=None, *, on_progress=None):
        on_progress(f"starting a vLLM server for {Path(checkpoint).name}")
        yield types.SimpleNamespace(endpoint="http://fake:1", restart=None,
                                    record=types.SimpleNamespace(model="base", checkpoint=str(checkpoint)))

    async def run_config(cfg, on_row=None, tasks=None, on_event=None, on_progress=None, warm_up_server=True):
        on_progress("warmed up in 0.1 s")
        return RunOutcome([], 0, 1.0, 1)

    monkeypatch.setattr(models.managed, "ensure_server", ensure_server)
    monkeypatch.setattr(engine, "ensure_server", ensure_server)  # the stage's servers: engine.model_endpoints
    monkeypatch.setattr(ponder.run, "run_config", run_config)
    train = TaskSet([Problem("a", "q1")], {"a": "1"}, MathVerifier())
    held = TaskSet([Problem("b", "q2")], {"b": "2"}, MathVerifier())
    loop = runner.Loop(cfg, train, held, on_progress=log.append)
    asyncio.run(loop.evaluate(0, tmp_path / "round-0" / "eval"))
    assert log == ["starting a vLLM server for base", "cot: warmed up in 0.1 s"]
