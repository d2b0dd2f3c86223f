"""Runs: resume after a kill, the run-dir lock, and no gold in solve mode (scripted engine)."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ponder import run
from ponder.config import parse_run_config
from ponder.engine import Engine
from ponder.rundir import RunDir, RunDirError
from ponder_fakes import CharTokenizer, ScriptedPolicy, fake_open_engine
from search.protocols import Problem
from verifiers.math import MathVerifier
from verifiers.tasks import TaskSet, load_tasks

HERE = Path(__file__).parent


def _ids(results: Path) -> list[str]:
    return [json.loads(line)["id"] for line in results.read_text().splitlines() if line.strip()]


def test_killed_run_resumes_without_losing_or_duplicating(tmp_path):
    run_dir = tmp_path / "run"
    results = run_dir / "results.jsonl"
    env = {**os.environ, "PYTHONPATH": f"{HERE}:{HERE.parents[1]}"}
    proc = subprocess.Popen([sys.executable, str(HERE / "run_fake.py"), str(run_dir), "0.4"], env=env,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not results.exists() or len(_ids(results)) < 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _ids(results)
    assert 3 <= len(first) < 12, "kill landed mid-run"
    subprocess.run([sys.executable, str(HERE / "run_fake.py"), str(run_dir), "0.0"], env=env, check=True,
                   timeout=120)
    ids = _ids(results)
    assert len(ids) == len(set(ids)) == 12
    assert ids[: len(first)] == first
    assert len(list((run_dir / "traces").glob("*.json"))) == 12


def test_run_dir_lock_keeps_a_second_run_out(tmp_path):
    with RunDir(tmp_path):
        with pytest.raises(RunDirError, match="in use"):
            with RunDir(tmp_path):
                pass


def test_resume_refuses_a_different_config(tmp_path):
    with RunDir(tmp_path) as rd:
        rd.write_config({"a": 1})
        rd.write_config({"a": 1})
        with pytest.raises(RunDirError, match="different config"):
            rd.write_config({"a": 2})


def test_a_field_added_since_the_run_began_is_its_default_on_resume(tmp_path):
    """A run started before ponder gained a field resumes: the saved file is re-validated under
    today's schema; a field set to another value is still a change. Serving fields (replicas,
    routing) may change like endpoints."""
    from ponder.rundir import config_changes

    cfg = parse_run_config({"tasks": {"source": "reasoning_gym", "name": "chain_sum"}})
    new = cfg.model_dump(mode="json")
    old = cfg.model_dump(mode="json")
    del old["search"]["aggregation"]  # as if ponder gained the field after the run began
    resolve = lambda saved: parse_run_config(saved).model_dump(mode="json")  # noqa: E731
    with RunDir(tmp_path) as rd:
        (tmp_path / "config.yaml").write_text(__import__("yaml").safe_dump(old))
        with pytest.raises(RunDirError, match=r"different config \(search.aggregation\)"):
            rd.write_config(new)  # compared as written, the missing fields look changed
        rd.write_config(new, resolve=resolve)
        rd.write_config(cfg.model_copy(update={"model": cfg.model.model_copy(update={"replicas": 2})})
                        .model_dump(mode="json"), resolve=resolve)  # serving: may change
        with pytest.raises(RunDirError, match=r"different config \(temperature\)"):
            rd.write_config(cfg.model_copy(update={"temperature": 0.1}).model_dump(mode="json"), resolve=resolve)
    assert config_changes({"broken": True}, {"a": 1}, resolve=parse_run_config) == ["broken", "a"]


def test_a_resume_may_reach_its_model_elsewhere_but_not_change_what_it_computes(tmp_path):
    """A loop stage's server gets a new port when the loop is re-run: the half-done run resumes."""
    cfg = parse_run_config({"tasks": {"source": "reasoning_gym", "name": "chain_sum"},
                            "model": {"endpoints": ["http://127.0.0.1:5001"], "checkpoint": "/ckpt"}})
    moved = cfg.model_copy(update={"model": cfg.model.model_copy(update={"endpoints": ["http://127.0.0.1:6002"],
                                                                         "max_in_flight": 8})})
    with RunDir(tmp_path) as rd:
        rd.write_config(cfg.model_dump(mode="json"))
        rd.write_config(moved.model_dump(mode="json"))
        assert "6002" in (tmp_path / "config.yaml").read_text()  # where this invocation ran
        other = moved.model_copy(update={"model": moved.model.model_copy(update={"checkpoint": "/other"}),
                                         "temperature": 0.1})
        with pytest.raises(RunDirError, match=r"different config \(model.checkpoint, temperature\)"):
            rd.write_config(other.model_dump(mode="json"))


def test_torn_last_line_is_dropped_and_repaired(tmp_path):
    with RunDir(tmp_path) as rd:
        rd.record({"id": "a", "x": 1}, None)
        with rd.results_path.open("a") as f:
            f.write('{"id": "b", "x"')  # killed mid-write
        assert set(rd.finished()) == {"a"}
        rd.record({"id": "b", "x": 2}, None)
        assert rd.finished()["b"]["x"] == 2


SENTINEL = "GOLD-SENTINEL-7391"


def test_solve_mode_search_never_sees_the_gold(tmp_path, monkeypatch):
    """The gold is a sentinel; no prompt, problem or context field of the search carries it."""
    problem = Problem(id="p0", question="What is 2 + 2?")
    tasks = TaskSet([problem], {"p0": SENTINEL}, MathVerifier())
    policy = ScriptedPolicy(answer="4")
    monkeypatch.setattr(run, "open_engine", fake_open_engine(policy))
    seen_ctx = []
    real_make_context = run.make_context

    def spy(*args, **kwargs):
        ctx = real_make_context(*args, **kwargs)
        seen_ctx.append(ctx)
        return ctx

    monkeypatch.setattr(run, "make_context", spy)
    cfg = parse_run_config({"run_dir": str(tmp_path), "tasks": {"source": "reasoning_gym", "name": "chain_sum"},
                            "search": {"algorithm": "mcts", "num_simulations": 3, "value": "prior"}})
    asyncio.run(run.run_config(cfg, tasks=tasks))
    sentinel_ids = CharTokenizer().encode(SENTINEL)
    assert policy.prompts, "the search ran"
    for prompt in policy.prompts:
        assert SENTINEL not in CharTokenizer().decode(prompt)
        assert not any(prompt[i:i + len(sentinel_ids)] == sentinel_ids for i in range(len(prompt)))
    (ctx,) = seen_ctx
    assert ctx.oracle is None
    assert SENTINEL not in repr(vars(ctx.problem))
    row = json.loads((tmp_path / "results.jsonl").read_text())
    assert row["id"] == "p0" and row["status"] in {"incorrect", "unparseable"}


def test_label_mode_gives_the_search_an_oracle(tmp_path, monkeypatch):
    problem = Problem(id="p0", question="What is 2 + 2?")
    tasks = load_tasks({"source": "reasoning_gym", "name": "chain_sum", "size": 2})
    cfg = parse_run_config({"mode": "label", "tasks": {"source": "reasoning_gym", "name": "chain_sum"}})
    eng = Engine(client=None, tokenizer=CharTokenizer(), policy=ScriptedPolicy(), reward_model=None,
                 system_prompt=None)
    ctx = run.make_context(cfg, eng, tasks.problems[0], tasks, 0)
    assert ctx.oracle is not None
    solve_cfg = parse_run_config({"tasks": {"source": "reasoning_gym", "name": "chain_sum"}})
    assert run.make_context(solve_cfg, eng, problem, tasks, 0).oracle is None


def test_records_are_written_off_the_event_loop_and_all_land_before_the_run_returns(tmp_path, monkeypatch):
    """Trace serialisation and the fsync'd result line run on the writer thread (the loop that
    sends requests never waits on the disk); every finished problem is on disk when
    run_config returns."""
    import threading

    tasks = load_tasks({"source": "reasoning_gym", "name": "chain_sum", "size": 6, "seed": 3})
    monkeypatch.setattr(run, "open_engine", fake_open_engine(ScriptedPolicy(answer="4")))
    threads: list[str] = []
    real_record = RunDir.record

    def slow_record(self, row, trace, labels=None):
        threads.append(threading.current_thread().name)
        time.sleep(0.05)  # a slow disk
        real_record(self, row, trace, labels)

    monkeypatch.setattr(RunDir, "record", slow_record)
    cfg = parse_run_config({"run_dir": str(tmp_path), "max_concurrent_problems": 3,
                            "tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 6, "seed": 3},
                            "search": {"algorithm": "self_consistency", "num_samples": 2}})
    outcome = asyncio.run(run.run_config(cfg, tasks=tasks))
    assert len(threads) == 6 and all(t.startswith("ponder-record") for t in threads)
    assert threading.main_thread().name not in threads
    assert sorted(_ids(tmp_path / "results.jsonl")) == sorted(p.id for p in tasks.problems)
    assert len(outcome.rows) == 6 and len(list((tmp_path / "traces").glob("*.json"))) == 6
