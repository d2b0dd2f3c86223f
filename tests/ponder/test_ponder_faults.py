"""Runs under engine faults and signals (issue 8 §1): nothing lost, nothing counted twice."""

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
from ponder.rundir import RunDir
from ponder_fakes import ScriptedPolicy, fake_open_engine
from search.protocols import EngineFault

HERE = Path(__file__).parent
TASKS = {"source": "reasoning_gym", "name": "chain_sum", "size": 10, "seed": 3}


def _cfg(run_dir: Path):
    return parse_run_config({"run_dir": str(run_dir), "tasks": TASKS, "max_concurrent_problems": 2,
                             "search": {"algorithm": "self_consistency", "num_samples": 2}})


def _lines(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]


def test_engine_fault_stops_the_run_without_recording_unfinished_problems(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "open_engine", fake_open_engine(ScriptedPolicy(delay=0.01, gone_after=4)))
    with pytest.raises(EngineFault, match="fake:1"):
        asyncio.run(run.run_config(_cfg(tmp_path)))
    first = _lines(tmp_path)
    assert 1 <= len(first) < 10
    assert all(r["status"] != "error" and r["usage"]["calls"] == 1 for r in first)  # only searches that ended
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "stopped" and events[-1]["unfinished"] == 10 - len(first)
    # The engine is back: the re-run finishes the rest, nothing twice.
    monkeypatch.setattr(run, "open_engine", fake_open_engine(ScriptedPolicy()))
    outcome = asyncio.run(run.run_config(_cfg(tmp_path)))
    ids = [r["id"] for r in _lines(tmp_path)]
    assert len(ids) == len(set(ids)) == 10 and outcome.skipped == len(first)
    assert run.summarize(outcome.rows, 1.0)["errors"] == 0


def test_error_rows_are_retried_on_resume_and_never_counted_as_answered(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "open_engine", fake_open_engine(ScriptedPolicy(answer="1")))
    asyncio.run(run.run_config(_cfg(tmp_path)))
    rows = _lines(tmp_path)
    broken = {**rows[0], "status": "error", "correct": True, "error": "ValueError: a bug"}
    with RunDir(tmp_path) as rd:
        rd.record(broken, None)
        assert rows[0]["id"] not in rd.finished() and rd.rows()[rows[0]["id"]]["status"] == "error"
        summary = run.summarize(list(rd.rows().values()), 1.0)
    assert summary["errors"] == 1 and summary["problems"] == 9  # accuracy over the 9 that finished
    outcome = asyncio.run(run.run_config(_cfg(tmp_path)))
    assert outcome.skipped == 9 and len(outcome.rows) == 10
    assert all(r["status"] != "error" for r in outcome.rows)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_stops_the_run_cleanly_and_a_rerun_resumes(tmp_path, sig):
    run_dir = tmp_path / "run"
    results = run_dir / "results.jsonl"
    env = {**os.environ, "PYTHONPATH": f"{HERE}:{HERE.parents[1]}"}
    proc = subprocess.Popen([sys.executable, str(HERE / "run_fake.py"), str(run_dir), "0.4"], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and f"Interrupted: interrupted by {sig.name}" in err
    first = [json.loads(x)["id"] for x in results.read_text().splitlines()]
    assert 3 <= len(first) < 12
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "stopped"
    subprocess.run([sys.executable, str(HERE / "run_fake.py"), str(run_dir), "0.0"], env=env, check=True, timeout=120)
    ids = [json.loads(x)["id"] for x in results.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 12 and ids[: len(first)] == first
