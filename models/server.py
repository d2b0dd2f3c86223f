"""Start, find and stop a local vLLM OpenAI-compatible server.

:func:`start_server` runs ``python -m models.launcher serve <checkpoint> ...`` (vLLM's own
CLI; see :mod:`models.launcher`) in a new process group, logs to a file under
``$XDG_STATE_HOME/ponder/logs``, waits until ``/health`` answers, and records the server in
``$XDG_STATE_HOME/ponder/server.json`` so that later ``ponder`` commands reuse it
(:func:`server_status`, :func:`models.managed.ensure_server`) and ``ponder server stop`` ends it
(:func:`stop_server`). A record whose process is gone is treated as absent and removed.

Environment given to the server (CPU build of vLLM):

- ``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1``: nothing is fetched from a model hub.
- ``VLLM_CPU_KVCACHE_SPACE``: KV-cache size in GiB (``kv_cache_gib``; 2 GiB holds ~93k tokens
  of SmolLM2-135M in bf16, half that in float32, so the default is 4 GiB in float32).
- ``VLLM_CPU_OMP_THREADS_BIND``: cores for the model's OpenMP threads. ``"auto"`` here means
  *all cores this process may run on* (e.g. ``0-1``); vLLM's own ``auto`` leaves one core of
  two idle.
- ``VLLM_CACHE_ROOT``: ``$XDG_CACHE_HOME/ponder/vllm`` rather than ``~/.cache/vllm``.
- ``VLLM_NO_USAGE_STATS=1``, ``DO_NOT_TRACK=1``.

Flags always passed: ``--enable-prompt-tokens-details`` (usage then reports cached prompt
tokens), ``--disable-uvicorn-access-log``, ``--served-model-name``; ``--enforce-eager`` by
default (ready in ~25 s instead of ~90 s of graph compilation on CPU).

``LD_PRELOAD`` is not set here: vLLM's CPU platform already preloads torch's ``libgomp``
itself, and preloading the ``libiomp5`` that vllm-cpu installs showed no reliable gain in
our measurements. The server inherits this process's environment, so exporting
``LD_PRELOAD`` before starting ponder still applies it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from models.paths import state_dir
from models.processes import cmdline, pid_running, terminate_group
from models.records import ServerRecord, clear_record, read_records, write_record
from models.server_settings import (  # re-exported: the settings belong with the server's API
    ServerSettings,
    all_cores,  # noqa: F401
    served_name,
    server_command,
    server_env,
)
from search.protocols import ConfigError, ModelServerError

log = logging.getLogger(__name__)

EXIT_WITH_PARENT_ENV = "PONDER_EXIT_WITH_PARENT"  # read by models.launcher (not imported here:
# importing it patches importlib.metadata in this process)
_ADDR_IN_USE = re.compile(r"address already in use", re.IGNORECASE)
# Popen objects of servers this process started, so that stopping one also reaps it.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

ProgressFn = Callable[[str], None]
"""Told what a start-up is doing now, one short phrase per phase (e.g. "loading weights").
A command renders it (``ponder run`` with a spinner and elapsed time); models/ prints nothing."""

STARTUP_PHASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Initializing a V1 LLM engine"), "starting the engine"),
    (re.compile(r"Starting to load model"), "loading weights"),
    (re.compile(r"Loading weights took ([\d.]+) seconds"), "weights loaded in {0} s; profiling the model and "
     "allocating the KV cache"),
    (re.compile(r"init engine .*? took ([\d.]+) s"), "engine ready in {0} s; starting the API server"),
    (re.compile(r"Starting vLLM server on"), "API server up; waiting for /health"),
)
"""vLLM 0.32's start-up log lines, in order, and the phase each one begins."""


class StartupLog:
    """Reads a starting server's log as it grows (from its size now: not the command line
    written before) and names the phase it reached (:data:`STARTUP_PHASES`); each new phase
    goes to ``on_progress`` once."""

    def __init__(self, path: Path, on_progress: ProgressFn | None) -> None:
        self.path, self.on_progress = path, on_progress
        self.offset = path.stat().st_size if path.exists() else 0
        self.reached = -1
        self.pending = ""

    def poll(self) -> None:
        if self.on_progress is None:
            return
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        self.offset += len(chunk)
        text = self.pending + chunk.decode("utf-8", "replace")
        lines = text.split("\n")
        self.pending = lines.pop()  # a line still being written
        for line in lines:
            for k in range(self.reached + 1, len(STARTUP_PHASES)):
                pattern, phase = STARTUP_PHASES[k]
                found = pattern.search(line)
                if found:
                    self.reached = k
                    self.on_progress(phase.format(*found.groups()))
                    break


@dataclasses.dataclass(frozen=True)
class ServerStatus:
    """A recorded server whose process is alive; ``healthy`` if ``/health`` answered 200."""

    record: ServerRecord
    healthy: bool


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As servers do: a port whose old connections linger in TIME_WAIT is still usable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def start_server(
    settings: ServerSettings | None = None, *, record: bool = True, exit_with_parent: bool = False,
    on_progress: ProgressFn | None = None,
) -> ServerRecord:
    """Starts a vLLM server and returns once ``/health`` answers.

    Args:
        settings: Server settings; default ``ServerSettings()`` (the embedded model).
        record: Write the server to the state file, where :func:`server_status`,
            :func:`ensure_server` and :func:`stop_server` find it. Test sessions pass False.
        exit_with_parent: The server ends itself when this process is gone, even if it is
            killed without cleaning up (for servers owned by one command or test session).
        on_progress: Told each phase of the start-up (from the server's log) as it begins.

    Raises:
        ModelServerError: the port is taken, the server exited during start-up (the message
            holds the end of its log), or it was not healthy within ``startup_timeout_s``.
        PonderError: the embedded checkpoint could not be prepared.
    """
    settings = settings or ServerSettings()
    if settings.checkpoint is None:
        from models.embedded import embedded_checkpoint

        if on_progress is not None:
            on_progress("preparing the embedded model's checkpoint")
        checkpoint = embedded_checkpoint()
    else:
        checkpoint = Path(settings.checkpoint).expanduser().resolve()
        if not (checkpoint / "config.json").is_file():
            raise ConfigError("checkpoint", str(checkpoint), "not a checkpoint directory (no config.json)")
    attempts = 3 if settings.port is None else 1
    for attempt in range(attempts):
        port = settings.port if settings.port is not None else free_port(settings.host)
        endpoint = f"http://{settings.host}:{port}"
        if port_in_use(settings.host, port):
            if settings.port is None:
                continue
            raise ModelServerError(
                endpoint,
                f"port {port} is already in use by another process; choose another port "
                "or leave it unset to pick a free one",
                retryable=False,
            )
        try:
            rec = _launch(settings, checkpoint, port, exit_with_parent, on_progress)
        except _AddressInUse:
            if attempt + 1 < attempts:
                log.info("port %d was taken during start-up; trying another", port)
                continue
            raise ModelServerError(endpoint, f"port {port} is already in use", retryable=True) from None
        if record:
            write_record(rec)
        return rec
    raise ModelServerError(settings.host, "found no free port", retryable=True)


class _AddressInUse(Exception):
    pass


def _launch(settings: ServerSettings, checkpoint: Path, port: int, exit_with_parent: bool,
            on_progress: ProgressFn | None = None) -> ServerRecord:
    endpoint = f"http://{settings.host}:{port}"
    logs = state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = logs / f"vllm-{port}-{stamp}.log"
    cmd = server_command(settings, checkpoint, port)
    env = server_env(settings)
    if exit_with_parent:
        env[EXIT_WITH_PARENT_ENV] = str(os.getpid())
    started = time.monotonic()
    with log_path.open("ab") as log_file:
        log_file.write(f"$ {' '.join(cmd)}\n".encode())
        log_file.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop_server kills the tree
        )
    _CHILDREN[proc.pid] = proc
    log.info("starting vLLM (pid %d) on %s; log %s", proc.pid, endpoint, log_path)
    deadline = started + settings.startup_timeout_s
    name = served_name(settings, checkpoint)
    if on_progress is not None:
        on_progress(f"starting a vLLM server for {name} (log {log_path})")
    phases = StartupLog(log_path, on_progress)
    try:
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while True:
                rc = proc.poll()
                if rc is not None:
                    _CHILDREN.pop(proc.pid, None)
                    tail = log_tail(log_path)
                    if _ADDR_IN_USE.search(tail):
                        raise _AddressInUse()
                    raise ModelServerError(
                        endpoint,
                        f"vLLM server exited with code {rc} during start-up; log {log_path} ends:\n{tail}",
                        retryable=False,
                    )
                phases.poll()
                if _serves(http, endpoint, name):
                    break
                if time.monotonic() > deadline:
                    raise ModelServerError(
                        endpoint,
                        f"vLLM server not healthy after {settings.startup_timeout_s:.0f} s "
                        f"(raise startup_timeout_s?); log {log_path} ends:\n{log_tail(log_path)}",
                        retryable=False,
                    )
                time.sleep(0.5)
    except BaseException:  # timeout, Ctrl-C, ...: never leave a half-started server behind
        if proc.poll() is None:
            terminate(proc.pid, timeout=10)
        raise
    took = time.monotonic() - started
    log.info("vLLM ready on %s after %.1f s", endpoint, took)
    if on_progress is not None:
        on_progress(f"server ready on {endpoint} in {took:.1f} s")
    return ServerRecord(
        pid=proc.pid,
        port=port,
        model=served_name(settings, checkpoint),
        checkpoint=str(checkpoint),
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        host=settings.host,
        log_path=str(log_path),
        startup_seconds=round(took, 1),
    )


def _serves(http: httpx.Client, endpoint: str, name: str) -> bool:
    """``/health`` is 200 and ``/v1/models`` lists ``name`` (so a foreign server that grabbed
    the port in the meantime is not mistaken for ours)."""
    try:
        if http.get(f"{endpoint}/health").status_code != 200:
            return False
        models = http.get(f"{endpoint}/v1/models").json().get("data", [])
        return any(m.get("id") == name for m in models)
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def log_tail(path: Path | str, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file ('' if unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def is_alive(rec: ServerRecord) -> bool:
    """True if ``rec``'s process still runs and is a ponder vLLM launcher (not a reused pid)."""
    child = _CHILDREN.get(rec.pid)
    if child is not None:
        return child.poll() is None
    if not pid_running(rec.pid):
        return False
    args = cmdline(rec.pid)
    if args is None:  # no /proc: the pid is alive, its identity cannot be checked
        return not sys.platform.startswith("linux")
    return b"models.launcher" in args and str(rec.port).encode() in args


def is_healthy(endpoint: str, timeout: float = 2.0) -> bool:
    """True if ``GET {endpoint}/health`` answers 200 within ``timeout`` seconds."""
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            return http.get(f"{endpoint.rstrip('/')}/health").status_code == 200
    except httpx.HTTPError:
        return False


def server_statuses() -> list[ServerStatus]:
    """The recorded servers (one, or ``ponder serve --replicas N``'s) whose processes are
    alive; stale records are removed."""
    found = []
    for rec in read_records():
        if not is_alive(rec):
            log.info("removing stale server record (pid %d is gone)", rec.pid)
            clear_record(rec)
            continue
        found.append(ServerStatus(record=rec, healthy=is_healthy(rec.endpoint)))
    return found


def server_status() -> ServerStatus | None:
    """The (first) recorded server if its process is alive, else None (stale records are removed)."""
    found = server_statuses()
    return found[0] if found else None


def stop_server(rec: ServerRecord | None = None, *, timeout: float = 20.0) -> bool:
    """Stops ``rec`` (default: every recorded server): SIGTERM to its process group, then SIGKILL.

    Returns:
        True if a live server was stopped; False if there was none (a stale record is removed).
    """
    targets = [rec] if rec is not None else read_records()
    stopped = False
    for target in targets:
        alive = is_alive(target)
        if alive:
            terminate(target.pid, timeout=timeout)
        clear_record(target)
        stopped = stopped or alive
    return stopped


def terminate(pid: int, *, timeout: float) -> None:
    """Stops the server's process group (vLLM's API server shuts its engine and workers down
    on SIGTERM, so the group normally empties within seconds) and reaps our child."""
    terminate_group(pid, timeout=timeout)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)
