"""Two replicas of the embedded model as Ray actors (issue 26 §2, §5): `ponder run` with a
`model.cluster` block, 40 MCTS problems; one replica's actor is SIGKILLed after the first two
answers, with most of the work still ahead (with 12 problems, one CI run recorded no outage at
all: the last ten problems ended without a request failing on the dead replica). Ray restarts the actor, its
new vLLM server rejoins, the requests that were in flight on it are re-issued on the other
replica, and every problem is answered exactly once with no error row."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
pytest.importorskip("ray")

PONDER = str(Path(sys.executable).parent / "ponder")
TASKS = {"source": "reasoning_gym", "name": "chain_sum", "seed": 13, "size": 40,
         "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}


def _actors(state: Path) -> list[int]:
    """Pids of the live Ray replica actors started by the run (``ray::ReplicaActor``)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes()
            env = (proc / "environ").read_bytes()
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"ray::ReplicaActor" in cmd and stat[0] not in "ZX" and f"XDG_STATE_HOME={state}".encode() in env:
            found.append(int(proc.name))
    return found


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "results.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")] if path.exists() else []


def test_a_killed_replica_actor_loses_nothing(tmp_path: Path, embedded_checkpoint_dir: Path):
    state = tmp_path / "state"
    run_dir = tmp_path / "run"
    cfg = {"name": "replicas", "run_dir": str(run_dir), "tasks": TASKS,
           "search": {"algorithm": "mcts", "num_simulations": 6, "num_children": 2, "value": "prior"},
           "steps": {"max_depth": 3, "max_step_tokens": 32}, "max_concurrent_problems": 8,
           "model": {"max_in_flight": 16, "kv_cache_gib": 1, "max_restarts": 3,
                     "cluster": {"kind": "ray", "address": "local", "replicas": 2, "cpus_per_replica": 1,
                                 "max_restarts": 2}}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, XDG_STATE_HOME=str(state), HF_HUB_OFFLINE="1")
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen([PONDER, "run", str(path)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 900
        while len(_rows(run_dir)) < 2:  # both replicas up and the search under way
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            assert time.time() < deadline
            time.sleep(0.5)
        actors = _actors(state)
        assert len(actors) == 2, actors
        os.kill(actors[0], signal.SIGKILL)  # the actor, and with it its vLLM server
        done_at_kill = len(_rows(run_dir))
        rc = proc.wait(timeout=1500)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (tmp_path / "run.log").read_text()
    assert rc == 0, out[-3000:]
    rows = _rows(run_dir)
    ids = [r["id"] for r in rows]
    assert len(ids) == 40 and len(set(ids)) == 40  # every problem answered exactly once
    assert all(r["status"] != "error" for r in rows), rows  # nothing errored from the dead replica
    events = _events(run_dir)
    outages = [e for e in events if e["event"] == "outage"]
    assert outages, (done_at_kill, events, out[-3000:])
    victim = outages[0]["endpoint"]
    # The survivor carries both shares meanwhile; on a loaded machine it may miss a health check
    # too (seen with another job's servers beside it). No outage may fail the run, and at most one
    # replica (the killed one, its actor still restarting when the last problem ended) may be
    # left unrecovered.
    assert not [e for e in events if e["event"] == "failed"], events
    unrecovered = {e["endpoint"] for e in outages} - {e["endpoint"] for e in events if e["event"] == "recovered"}
    assert len(unrecovered) <= 1, events
    assert any(e["event"] == "reissued" and e["endpoint"] == victim for e in events)  # its requests sent again
