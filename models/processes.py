"""Liveness and termination of OS processes and process groups, and the watcher processes
that end them when their owner is gone (:mod:`models.guardian`, :mod:`models.ray_local`).

Reads Linux ``/proc`` where it exists (a zombie counts as gone) and falls back to POSIX
signals elsewhere. Used by :mod:`models.server` for the vLLM servers it starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_GONE = ("Z", "X")
"""``/proc/<pid>/stat`` states of a process that has exited (zombie, dead)."""


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (state, ppid, pgrp, ...); None if unreadable."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _signal_reaches(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_running(pid: int) -> bool:
    """True if process ``pid`` exists and has not exited (zombies count as exited)."""
    fields = _stat_fields(pid)
    if fields:
        return fields[0] not in _GONE
    return _signal_reaches(pid)


def process_identity(pid: int) -> tuple[int, float] | None:
    """``(pid, start time)`` of a live process (None when there is none), so that a pid reused
    by another process does not pass for it: the start time is ``/proc/PID/stat``'s (clock
    ticks after boot); without ``/proc``, 0 (the pid alone)."""
    fields = _stat_fields(pid)
    if fields is not None and len(fields) > 19:
        return (pid, float(fields[19])) if fields[0] not in _GONE else None
    return (pid, 0.0) if _signal_reaches(pid) else None


def cmdline(pid: int) -> list[bytes] | None:
    """The command line of ``pid`` from ``/proc`` (None where unreadable or not Linux)."""
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` from ``/proc`` (None where gone, unreadable or not Linux)."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields and len(fields) > 1 else None


def group_members(pgid: int) -> list[int] | None:
    """Pids of the live (non-zombie) processes in process group ``pgid``; None where there
    is no ``/proc`` to list them (not Linux)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in _GONE:
            members.append(int(entry.name))
    return members


def children_of(parents: Collection[int]) -> list[int] | None:
    """Pids of the live (non-zombie) processes whose parent is one of ``parents``; None where
    there is no ``/proc`` to list them (not Linux)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    wanted = {str(p) for p in parents}
    out = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and len(fields) > 1 and fields[1] in wanted and fields[0] not in _GONE:
            out.append(int(entry.name))
    return out


def group_running(pgid: int) -> bool:
    """True if a live (non-zombie) process is in process group ``pgid``."""
    members = group_members(pgid)
    if members is None:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return bool(members)


def terminate_group(pgid: int, *, timeout: float) -> None:
    """SIGTERM the process group ``pgid``; SIGKILL whatever of it outlives ``timeout`` s."""

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    if escalate(send, lambda: pid_running(pgid) or group_running(pgid), grace_s=timeout):
        log.warning("process group %d ignored SIGTERM for %.0f s; killed it", pgid, timeout)


def escalate(send: Callable[[signal.Signals], None], left: Callable[[], bool], *, grace_s: float,
             poll_s: float = 0.2) -> bool:
    """``send(SIGTERM)``, then up to ``grace_s`` s while ``left()``, then ``send(SIGKILL)``.
    Returns True if it came to SIGKILL."""
    send(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while left():
        if time.monotonic() >= deadline:
            send(signal.SIGKILL)
            return True
        time.sleep(poll_s)
    return False


_WATCHERS: list[subprocess.Popen[bytes]] = []


def start_watcher(module: str, args: Sequence[str], *, what: str, new_session: bool = False) -> int | None:
    """Starts ``python -m MODULE ARGS...``, a watcher that calls :func:`watcher_ready` once it is
    set (its signal handlers, what it watches noted), and returns its pid then; None if it could
    not start (said on stderr with ``what``: what its absence may leave behind). The watcher is
    held here, never collected while it runs; ``new_session``: out of this process's group and
    session, so a signal to the command's group does not reach it."""
    try:
        watcher = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, close_fds=True, start_new_session=new_session)
    except OSError as err:
        sys.stderr.write(f"ponder: no {module} watcher ({err}); {what}\n")
        return None
    assert watcher.stdout is not None
    with watcher.stdout:
        watcher.stdout.read(1)
    _WATCHERS.append(watcher)
    return watcher.pid


def watcher_ready() -> None:
    """In a watcher started by :func:`start_watcher`: its starter goes on (one byte), and its
    stdout is let go."""
    os.write(1, b"1")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
