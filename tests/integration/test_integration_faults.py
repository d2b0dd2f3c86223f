"""Engine faults on the real embedded server (issue 8 §3): `ponder run` as a user runs it.

- The server ponder started is SIGKILLed three times mid-run: ponder restarts it, re-issues
  what was in flight, and every problem is answered exactly once, as in a run without faults.
- An external endpoint (a TCP proxy in front of the session's server) goes away and stays
  away: the run stops with a clear error and a non-zero exit; once it is back, a re-run
  finishes the rest with nothing duplicated.
- Ctrl-C (SIGINT) mid-run: exit 130; a re-run completes, no duplicates.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]  # server restarts take ~30-60 s each

PONDER = str(Path(sys.executable).parent / "ponder")
TASKS = {"source": "reasoning_gym", "name": "chain_sum", "seed": 11,
         "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}


def _config(tmp: Path, name: str, size: int, **model) -> Path:
    cfg = {"name": name, "run_dir": str(tmp / name), "tasks": {**TASKS, "size": size},
           "search": {"algorithm": "self_consistency", "num_samples": 4},
           "steps": {"max_depth": 4, "max_step_tokens": 48}, "max_concurrent_problems": 6,
           "model": {"max_in_flight": 32, **model}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _ids(run_dir: Path) -> list[str]:
    results = run_dir / "results.jsonl"
    if not results.exists():
        return []
    return [json.loads(x)["id"] for x in results.read_text().splitlines() if x.endswith("}")]


def _events(run_dir: Path, kind: str) -> list[dict]:
    path = run_dir / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def _wait(cond, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert proc.poll() is None, "the run ended before the fault was injected"
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.2)


def _servers(state: Path) -> dict[int, int]:
    """``{pid: parent pid}`` of the live vLLM processes started with ``XDG_STATE_HOME=state``
    (the environment a command hands its servers): API servers, run as ``python -m
    models.launcher``, and their engine cores, which retitle themselves ``VLLM::EngineCore``."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            names = (proc / "cmdline").read_bytes().lower() + b" " + (proc / "comm").read_bytes().lower()
            named = b"vllm" in names or b"models.launcher" in names  # engine cores retitle themselves
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if named and fields[0] not in "ZX" and f"XDG_STATE_HOME={state}".encode() in env:
            found[int(proc.name)] = int(fields[1])
    return found


def _metric(out: str, name: str) -> int:
    """A row of the printed summary table (``│ errors │ 0 │``)."""
    found = re.search(rf"^\W*{name}\s*\W\s*(\d+)\s*\W*$", out, flags=re.M)
    assert found, f"no {name!r} row in:\n{out}"
    return int(found.group(1))


def _ponder_run(cfg: Path, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([PONDER, "run", str(cfg)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kw)


def test_server_sigkilled_three_times_loses_nothing(embedded_server, tmp_path):
    # The faulty run owns its server: a fresh state dir (no recorded server), so it starts its
    # own, and records it nowhere another command would reuse it.
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "COLUMNS": "200"}
    run_dir = tmp_path / "faults"
    proc = _ponder_run(_config(tmp_path, "faults", 60), env)
    record = tmp_path / "state" / "ponder" / "server.json"
    try:
        for kill in range(3):
            base = len(_ids(run_dir))
            _wait(lambda: len(_ids(run_dir)) >= base + 4 and len(_events(run_dir, "recovered")) == kill, proc)
            assert not record.exists()  # a command's own server is not offered for reuse
            (pid,) = [p for p, parent in _servers(tmp_path / "state").items() if parent == proc.pid]
            os.kill(pid, signal.SIGKILL)  # the vLLM API server, mid-run
            _wait(lambda: len(_events(run_dir, "outage")) > kill, proc)
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert len(_events(run_dir, "restart")) == 3 and len(_events(run_dir, "recovered")) == 3
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 60  # every problem answered exactly once
    assert all(r["status"] != "error" and r["usage"]["generated_tokens"] > 0 for r in rows)
    assert sum(r["restarts"] for r in rows) >= 3  # problems in flight saw the restarts
    assert "server restarts" in out and "errors" in out
    assert (_metric(out, "errors"), _metric(out, "server restarts"), _metric(out, "problems")) == (0, 3, 60)
    # The same problem ids as a run without faults (on the session's server).
    clean = tmp_path / "clean"
    ok = subprocess.run([PONDER, "run", str(_config(tmp_path, "clean", 60, endpoints=[embedded_server.endpoint]))],
                        env=env, capture_output=True, text=True, timeout=900)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert sorted(_ids(clean)) == sorted(ids)
    assert not _servers(tmp_path / "state")  # the server the run started was stopped at the end


def test_external_endpoint_gone_for_good_then_back(embedded_server, tmp_path):
    url = urlparse(embedded_server.endpoint)
    proxy = TcpProxy(url.hostname, url.port)
    proxy.start()
    env = {**os.environ, "COLUMNS": "200"}
    run_dir = tmp_path / "external"
    cfg = _config(tmp_path, "external", 24, endpoints=[proxy.endpoint], outage_timeout_s=6)
    proc = _ponder_run(cfg, env)
    _wait(lambda: len(_ids(run_dir)) >= 4, proc)
    proxy.stop()  # the endpoint goes away and does not come back
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out
    assert proxy.endpoint in out and "outage_timeout_s" in out and "re-run" in out
    first = _ids(run_dir)
    assert 4 <= len(first) < 24
    assert [e["event"] for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines())][-2:] == [
        "failed", "stopped"]
    proxy.start()  # back, on the same port
    again = subprocess.run([PONDER, "run", str(cfg)], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout
    ids = _ids(run_dir)
    assert len(ids) == len(set(ids)) == 24 and ids[: len(first)] == first
    proxy.stop()


def test_ctrl_c_then_rerun_completes_without_duplicates(embedded_server, tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    run_dir = tmp_path / "sigint"
    cfg = _config(tmp_path, "sigint", 24, endpoints=[embedded_server.endpoint])
    proc = _ponder_run(cfg, env)
    _wait(lambda: len(_ids(run_dir)) >= 4, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted by SIGINT" in out
    first = _ids(run_dir)
    assert 4 <= len(first) < 24
    again = subprocess.run([PONDER, "run", str(cfg)], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"resumed: {len(first)} problems" in again.stdout, again.stdout
    ids = _ids(run_dir)
    assert len(ids) == len(set(ids)) == 24 and ids[: len(first)] == first
