"""drivers: N (issue 26 §4): a run's problems sharded over Ray driver actors against shared
fake replicas (benchmarks.fake_server: the driver is what is tested), recorded through one
writer in an unsharded run's layout; resumed, a dead driver's problems re-run, refused at load."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest
import yaml

from ponder.config import parse_run_config
from search.protocols import ConfigError

TASKS = {"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 1}


# -- refused at load (no Ray needed) ----------------------------------------------------------

@pytest.mark.parametrize(("model", "ok"), [
    ({}, False),  # one local server: nothing to share
    ({"endpoints": ["http://h:1"]}, True),
    ({"replicas": 2}, True),
    ({"cluster": {"kind": "ray", "replicas": 2}}, True),
])
def test_drivers_need_servers_to_share(model, ok):
    data = {"tasks": TASKS, "drivers": 2, "model": model}
    if ok:
        assert parse_run_config(data).drivers == 2
        return
    with pytest.raises(ConfigError) as e:
        parse_run_config(data)
    assert e.value.field == "drivers" and "model.endpoints" in e.value.reason and "drivers: 1" in e.value.reason
    assert parse_run_config({"tasks": TASKS}).drivers == 1  # the default: today's path


@pytest.mark.parametrize(("extra", "ray_installed", "fix"), [
    ({"model": {}}, True, "list the servers in model.endpoints"),
    ({"model": {"endpoints": ["http://h:1"]}}, False, "or pip install ray"),
])
def test_the_cli_refuses_drivers_that_cannot_work_with_exit_2(tmp_path, monkeypatch, extra, ray_installed, fix):
    import importlib.util

    from typer.testing import CliRunner

    import ponder.run
    from ponder.cli.main import app

    if not ray_installed:
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    monkeypatch.setattr(ponder.run, "open_engine", lambda *a, **k: pytest.fail("an engine was opened"))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "out"), "tasks": TASKS, "drivers": 2, **extra}))
    for command in ("run", "label"):
        result = CliRunner().invoke(app, [command, str(path)])
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert "invalid drivers=2" in text and fix in text, text
    assert not (tmp_path / "out").exists()


def test_the_drivers_get_the_command_s_servers_and_absolute_paths(tmp_path, monkeypatch):
    from pathlib import Path
    from types import SimpleNamespace

    from ponder.shards.supervisor import driver_config

    monkeypatch.chdir(tmp_path)
    cfg = parse_run_config({"drivers": 2, "run_dir": "runs/x", "tasks": {"source": "jsonl", "path": "t.jsonl"},
                            "model": {"replicas": 2, "max_in_flight": 7, "target_in_flight": 9},
                            "reward": {"kind": "generative_prm", "checkpoint": "prm"}})
    served = SimpleNamespace(endpoints=["http://a:1", "http://a:2"], name="policy", checkpoint=Path("ck"))
    d = driver_config(cfg, served, SimpleNamespace(endpoints=["http://b:3"], name="judge"))
    assert (d.drivers, d.model.replicas, d.model.endpoints, d.model.model) == (1, 1, served.endpoints, "policy")
    assert (d.reward.endpoints, d.reward.model, d.model.max_in_flight) == (["http://b:3"], "judge", 7)
    assert d.model.target_in_flight == 5  # the servers' saturation point, shared: ceil(9 / 2) each
    assert (d.run_dir, str(d.tasks.path), d.model.checkpoint, d.reward.checkpoint) == tuple(
        str(tmp_path / x) for x in ("runs/x", "t.jsonl", "ck", "prm"))


# -- sharded runs on a local Ray and two fake replicas ----------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 * 1024)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    """A fake replica's settings: steps that decode with the embedded model's tokenizer."""
    from benchmarks.driver import step_pool
    from benchmarks.fake_server import Replica
    from models.embedded import embedded_checkpoint
    from models.tokenizer import HFTokenizer

    pool = step_pool(HFTokenizer(embedded_checkpoint()), tmp_path_factory.mktemp("steps") / "steps.json", size=40)
    return Replica(tokens_per_s=2e4, latency_s=0.01, steps_file=str(pool))


@pytest.fixture(scope="module")
def replicas(local_ray, replica):
    from benchmarks.fake_server import start_fakes
    from models.server import ServerSettings, terminate

    records = start_fakes(ServerSettings(), 2, replica)
    yield [r.endpoint for r in records]
    for r in records:
        terminate(r.pid, timeout=5)


def config(endpoints, run_dir, problems, drivers=2, simulations=3):
    from benchmarks.driver import workload

    cfg = workload(problems, 6, 16, endpoints, str(run_dir), simulations=simulations, children=2)
    return parse_run_config({**cfg.model_dump(mode="json"), "drivers": drivers})


def lines(run_dir):
    return [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines() if x.strip()]


def lines_kept(run_dir):
    """The result lines that parse (a torn one dropped, as ``RunDir.rows`` does)."""
    out = []
    for x in (run_dir / "results.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(x))
        except json.JSONDecodeError:
            continue
    return out


def test_a_sharded_run_records_every_problem_once_and_sums_every_shard(tmp_path, replicas):
    from benchmarks.driver import completions_now
    from ponder.run import run_config, summarize
    from ponder.shards.supervisor import ShardedOutcome, driver_actors
    from verifiers.tasks import load_tasks

    run_dir = tmp_path / "run"
    cfg = config(replicas, run_dir, 24)
    tasks = load_tasks(cfg.tasks)
    seen: list[dict] = []
    before = completions_now(replicas)
    outcome = asyncio.run(run_config(cfg, on_row=seen.append, tasks=tasks, warm_up_server=False))
    sent = completions_now(replicas) - before

    assert isinstance(outcome, ShardedOutcome) and outcome.skipped == 0
    ids = [r["id"] for r in lines(run_dir)]
    assert Counter(ids) == Counter(p.id for p in tasks.problems)  # each once
    assert sorted(r["id"] for r in seen) == sorted(ids)  # every row passed on to the command
    assert all(r["status"] != "error" for r in outcome.rows)
    for pid in ids:  # the unsharded layout: a trace per problem, the config, no shard folders
        trace = json.loads((run_dir / "traces" / f"{pid}.json").read_text())
        assert trace["problem_id"] == pid
    assert (run_dir / "config.yaml").exists() and sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == ["traces"]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["drivers"] == 2

    reports = outcome.drivers
    assert [r.index for r in reports] == [0, 1] and [r.problems for r in reports] == [12, 12]
    assert all(r.cpu_s > 0 and r.end > r.start for r in reports)
    summary = summarize(outcome.rows, outcome.wall_seconds, outcome.engine_stats)
    assert summary["problems"] == 24 and summary["errors"] == 0
    assert summary["calls"] == sum(r["usage"]["calls"] for r in lines(run_dir)) == sent  # both shards' requests
    assert 0 < outcome.wall_seconds <= max(r.end for r in reports) - min(r.start for r in reports) + 1e-6
    assert not driver_actors()  # the drivers are gone


def test_a_resumed_sharded_label_run_skips_the_recorded_problems_and_retries_errors(tmp_path, replicas):
    from ponder.run import run_config
    from verifiers.tasks import load_tasks

    run_dir = tmp_path / "run"
    cfg = parse_run_config({**config(replicas, run_dir, 12).model_dump(mode="json"), "mode": "label"})
    tasks = load_tasks(cfg.tasks)
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    usage = {"prompt_tokens": 10, "generated_tokens": 7, "cached_prompt_tokens": 0, "calls": 3}
    kept = [{"id": p.id, "answer": "1", "status": "wrong", "correct": False, "usage": usage, "outages": 0,
             "restarts": 0} for p in tasks.problems[:5]]
    errored = tasks.problems[5].id
    with (run_dir / "results.jsonl").open("w") as f:  # as a SIGKILL leaves it: 5 finished problems,
        f.writelines(json.dumps(r) + "\n" for r in kept)  # an errored one (retried), a torn last line
        f.write(json.dumps({**kept[0], "id": errored, "status": "error", "answer": None, "error": "x"}) + "\n")
        f.write('{"id": "' + tasks.problems[6].id + '", "answ')
    # the resumed command's config differs only in a serving field (drivers 2 -> 3)
    resumed = parse_run_config({**cfg.model_dump(mode="json"), "drivers": 3})
    outcome = asyncio.run(run_config(resumed, tasks=tasks, warm_up_server=False))

    assert outcome.skipped == 5
    after = lines_kept(run_dir)
    assert after[:5] == kept  # untouched
    finished = Counter(r["id"] for r in after if r["status"] != "error")
    assert finished == Counter(p.id for p in tasks.problems)  # each finished exactly once
    assert sum(r.problems for r in outcome.drivers) == 7  # the errored one and 6 never recorded
    assert len(outcome.rows) == 12 and all(r["status"] != "error" for r in outcome.rows)
    for row in after[6:]:  # label mode: each re-run problem's labels written before its row
        assert "labels" in row and (run_dir / "labels" / f"{row['id']}.jsonl").exists()


def test_a_dead_driver_s_unfinished_problems_are_rerun_and_nothing_is_recorded_twice(tmp_path, replicas):
    import ray

    from ponder.run import run_config
    from ponder.shards.supervisor import driver_actors
    from verifiers.tasks import load_tasks

    run_dir = tmp_path / "run"
    cfg = config(replicas, run_dir, 24, simulations=6)
    tasks = load_tasks(cfg.tasks)

    async def go():
        run = asyncio.ensure_future(run_config(cfg, tasks=tasks, warm_up_server=False))
        victim = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not run.done():
            names = driver_actors()
            recorded = len(lines(run_dir)) if (run_dir / "results.jsonl").exists() else 0
            if victim is None and recorded >= 3 and names:
                victim = sorted(names)[0]
                ray.kill(ray.get_actor(victim, namespace=_namespace(victim)), no_restart=True)
            await asyncio.sleep(0.05)
        return victim, await run

    victim, outcome = asyncio.run(go())
    assert victim is not None, "the run ended before a driver could be killed"
    assert outcome.lost_drivers == 1
    finished = Counter(r["id"] for r in lines(run_dir))
    assert finished == Counter(p.id for p in tasks.problems)  # each exactly once, none lost
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    lost = next(e for e in events if e["event"] == "driver_lost")
    again = next(e for e in events if e["event"] == "driver_restarted")
    assert lost["driver"] == again["driver"] and again["problems"] == lost["unfinished"] > 0


def _namespace(name: str) -> str:
    import ray

    return next(a["namespace"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"] == name)


def test_the_command_s_servers_are_restarted_once_for_all_drivers(tmp_path, monkeypatch, local_ray, replica):
    """model.replicas: the command's servers (fakes here) handed to the drivers; both killed
    before the drivers start (so the run cannot end without them), each is restarted by the
    command once, though both drivers' breakers saw it go, and the run finishes."""
    import contextlib
    from types import SimpleNamespace

    import ponder.engine
    from benchmarks.fake_server import start_fake
    from models.embedded import embedded_checkpoint
    from models.server import ServerSettings, terminate
    from ponder.run import run_config
    from verifiers.tasks import load_tasks

    restarted: list[str] = []

    class Server:
        def __init__(self):
            self.rec = start_fake(ServerSettings(), replica=replica)
            self.record = SimpleNamespace(checkpoint=str(embedded_checkpoint()), model="fake")
            self.endpoint = self.rec.endpoint

        async def restart(self):
            self.rec = await asyncio.to_thread(start_fake, ServerSettings(), replica=replica)
            restarted.append(self.endpoint)
            return self.rec.endpoint

    servers = [Server(), Server()]

    @contextlib.contextmanager
    def ensure_replicas(n, settings, on_progress=None):
        assert n == 2
        yield servers

    monkeypatch.setattr(ponder.engine, "ensure_replicas", ensure_replicas)
    run_dir = tmp_path / "run"
    data = config(["http://unused:1"], run_dir, 12).model_dump(mode="json")
    cfg = parse_run_config({**data, "model": {**data["model"], "endpoints": [], "replicas": 2, "model": None,
                                              "outage_timeout_s": 60}})
    tasks = load_tasks(cfg.tasks)

    killed = []

    def on_progress(message):  # before any driver has sent a request: the run cannot end without them
        if message.startswith("starting") and not killed:
            for s in servers:
                terminate(s.rec.pid, timeout=5)
            killed.append(message)

    try:
        outcome = asyncio.run(run_config(cfg, tasks=tasks, warm_up_server=False, on_progress=on_progress))
    finally:
        for s in servers:
            terminate(s.rec.pid, timeout=5)
    assert killed
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    assert sorted(restarted) == sorted(s.endpoint for s in servers), json.dumps(events)[:2000]  # once each
    assert outcome.engine_stats["restarts"] == 2
    assert Counter(r["id"] for r in lines(run_dir)) == Counter(p.id for p in tasks.problems)
    down = {(e["driver"], e["endpoint"]) for e in events if e["event"] == "outage"}
    back = {(e["driver"], e["endpoint"]) for e in events if e["event"] == "recovered"}
    # both drivers saw the servers down and got them back (one it no longer needed may have stayed
    # down for it), through the command's one restart of each
    assert back <= down and {d for d, _ in down} == {d for d, _ in back} == {0, 1}
