"""Liveness and termination of OS processes and process groups.

Reads Linux ``/proc`` where it exists (a zombie counts as gone) and falls back to POSIX
signals elsewhere. Used by :mod:`models.server` for the vLLM servers it starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Collection
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
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (pid_running(pgid) or group_running(pgid)):
        time.sleep(0.2)
    if pid_running(pgid) or group_running(pgid):
        log.warning("process group %d ignored SIGTERM for %.0f s; killing it", pgid, timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
