"""The one `model` block (issue 26 §2): `ponder prove` and the loop's label and eval stages take
`replicas` / `cluster` as `ponder run` does, and reach the servers it starts; a Ray replica's
`replica_rejoined` event reaches the run's events.jsonl. Scripted stand-ins for the replica
starters, fake OpenAI-compatible servers (benchmarks.fake_server) behind them."""

from __future__ import annotations

import contextlib
import json
import types

import pytest
import yaml

import models.ray_replicas
import ponder.engine
from benchmarks.fake_server import Replica, start_fakes
from models.server import ServerSettings, terminate
from ponder.config import ModelConfig, RayClusterConfig
from search.protocols import ConfigError

TASKS = {"source": "reasoning_gym", "name": "chain_sum", "size": 4, "seed": 3,
         "config": {"min_terms": 3, "max_terms": 3, "min_digits": 2, "max_digits": 2}}


class Fakes:
    """Fake servers started on demand (``start``); the last ones started (``last``)."""

    def __init__(self) -> None:
        self.started: list[list] = []

    def start(self, n: int) -> list:
        self.started.append(start_fakes(ServerSettings(), n, Replica(tokens_per_s=1e5, latency_s=0.001)))
        return self.started[-1]

    @property
    def last(self) -> list:
        return self.started[-1]


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """Fake servers; the warm-up is skipped so every request they count is the run's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    async def no_warm_up(*args, **kwargs):
        return None

    monkeypatch.setattr(ponder.engine, "warm_up", no_warm_up)
    f = Fakes()
    yield f
    for records in f.started:
        for r in records:
            terminate(r.pid, timeout=5)


class Local:
    """What ensure_replicas yields per server: an endpoint, its record, a restart function."""

    def __init__(self, record):
        self.record, self.endpoint, self.settings = record, record.endpoint, ServerSettings()

    async def restart(self):
        return self.endpoint


def completions(records) -> list[float]:
    import httpx

    out = []
    for r in records:
        text = httpx.get(r.endpoint + "/metrics", timeout=5).text
        out.append(next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("vllm:request_success_total")))
    return out


@pytest.fixture
def local_replicas(fakes, monkeypatch):
    """``model.replicas: N`` -> N fake servers (ponder.engine.ensure_replicas scripted); what was asked."""
    asked: list[int] = []

    @contextlib.contextmanager
    def ensure_replicas(n, settings, *, on_progress=None):
        asked.append(n)
        yield [Local(r) for r in fakes.start(n)]

    monkeypatch.setattr(ponder.engine, "ensure_replicas", ensure_replicas)
    return asked, fakes


@pytest.fixture
def ray_cluster(fakes, monkeypatch):
    """``model.cluster`` -> fake servers standing in for the replica actors (models.ray_replicas.ray_replicas
    scripted); it reports a replica rejoining through the ``on_event`` it was given, as RayReplicas.recover does."""
    seen: dict = {}

    @contextlib.contextmanager
    def ray_replicas(cluster, settings, *, on_progress=None, on_event=None, **kw):
        records = fakes.start(cluster.replicas)
        seen.update(replicas=cluster.replicas, records=records)
        endpoints = [r.endpoint for r in records]
        if on_event is not None:
            on_event({"event": "replica_rejoined", "endpoint": endpoints[0], "url": endpoints[0], "time": 0.0})
        yield types.SimpleNamespace(endpoints=lambda: endpoints, checkpoint=None, model="fake",
                                    restart_fns=lambda: {})

    monkeypatch.setattr(models.ray_replicas, "ray_replicas", ray_replicas)
    return seen


def events(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def prove_cfg(tmp_path, model: ModelConfig):
    from ponder.prove import ProveConfig
    from search.prover.agents import BfsProverConfig
    from search.prover.bfs import ProverConfig

    search = BfsProverConfig(num_agents=1, max_calls=3, prover=ProverConfig(expansion_width=2, max_expansions=2))
    return ProveConfig(env="rewrite", theorems=["rw_refl", "rw_expand_sq", "rw_sym_expand"], search=search,
                       run_dir=str(tmp_path / "prove"), model=model)


async def test_prove_takes_model_replicas_and_sends_to_each(tmp_path, local_replicas):
    from ponder.prove import run_prove

    asked, fakes = local_replicas
    await run_prove(prove_cfg(tmp_path, ModelConfig(replicas=2, max_in_flight=4)))
    assert asked == [2]
    rows = [json.loads(line) for line in (tmp_path / "prove" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    assert all(n > 0 for n in completions(fakes.last)), completions(fakes.last)  # tree routing spread them


async def test_prove_takes_model_cluster_and_logs_a_rejoined_replica(tmp_path, ray_cluster):
    from ponder.prove import run_prove

    cluster = RayClusterConfig(address="auto", replicas=2)
    await run_prove(prove_cfg(tmp_path, ModelConfig(cluster=cluster, max_in_flight=4)))
    assert ray_cluster["replicas"] == 2
    assert all(n > 0 for n in completions(ray_cluster["records"]))
    rejoined = [e for e in events(tmp_path / "prove") if e["event"] == "replica_rejoined"]
    assert [e["endpoint"] for e in rejoined] == [ray_cluster["records"][0].endpoint]


async def test_run_logs_a_rejoined_replica_in_events_jsonl(tmp_path, ray_cluster):
    from ponder.config import parse_run_config
    from ponder.run import run_config

    cfg = parse_run_config({"run_dir": str(tmp_path / "run"), "tasks": {**TASKS, "size": 2},
                            "search": {"algorithm": "cot"},
                            "model": {"cluster": {"kind": "ray", "replicas": 1}}})
    outcome = await run_config(cfg)
    assert len(outcome.rows) == 2
    assert [e["event"] for e in events(tmp_path / "run")].count("replica_rejoined") == 1


def loop_cfg(tmp_path, model: dict):
    from ponder.config import validated
    from ponder.loop.config import LoopConfig

    return validated(LoopConfig, {
        "loop_dir": str(tmp_path / "loop"), "train_tasks": {**TASKS, "size": 2, "seed": 1},
        "eval_tasks": {**TASKS, "size": 2, "seed": 2},
        "label": {"search": {"algorithm": "self_consistency", "num_samples": 2}, "labels": [
            {"generator": "math_shepherd", "num_rollouts": 1, "max_rollout_tokens": 16}]},
        "eval": {"budget": {"max_generated_tokens": 200},
                 "methods": {"cot": {"algorithm": "cot"}, "sc": {"algorithm": "self_consistency", "num_samples": 2}}},
        "drop_shared_eval": True, "max_in_flight": 8, "model": model})


async def test_the_loop_eval_stage_serves_the_round_as_the_model_block_says(tmp_path, local_replicas):
    from ponder.loop.runner import Loop

    asked, fakes = local_replicas
    loop = Loop(loop_cfg(tmp_path, {"replicas": 2, "routing": "request"}))
    result = await loop.evaluate(0, tmp_path / "eval")
    assert asked == [2]  # once for the stage, both methods' runs on them
    assert set(result.outputs) == {"cot", "sc"}
    assert all(v["problems"] == len(loop.held_out.problems) > 0 for v in result.outputs.values())
    endpoints = [r.endpoint for r in fakes.last]
    for method in ("cot", "sc"):  # each run was handed both replicas, as endpoints
        saved = yaml.safe_load((tmp_path / "eval" / method / "config.yaml").read_text())["model"]
        assert (saved["endpoints"], saved["replicas"], saved["routing"]) == (endpoints, 1, "request")
    assert sum(completions(fakes.last)) > 0


async def test_the_loop_label_stage_serves_the_round_on_a_cluster(tmp_path, ray_cluster):
    from ponder.loop.runner import Loop

    loop = Loop(loop_cfg(tmp_path, {"cluster": {"kind": "ray", "replicas": 2}}))
    with loop.serving(0, with_prm=False) as (model, reward):
        assert model.endpoints == [r.endpoint for r in ray_cluster["records"]]
        assert (model.model, model.replicas, model.cluster, model.max_in_flight) == ("fake", 1, None, 8)
        assert model.checkpoint == str(loop.policy(0)) and reward is None


@pytest.mark.parametrize(("model", "field"), [({"checkpoint": "/ckpt"}, "model.checkpoint"),
                                             ({"endpoints": ["http://h:1"]}, "model.endpoints"),
                                             ({"max_in_flight": 3}, "model.max_in_flight")])
def test_the_loop_s_model_block_leaves_what_is_served_to_the_loop(tmp_path, model, field):
    with pytest.raises(ConfigError) as e:
        loop_cfg(tmp_path, model)
    assert e.value.field == field
