"""A server's guardian: its whole process group goes when its leader or its owner does.

A server started by :mod:`models.server` is ``python -m models.launcher`` leading a process
group of its own, with vLLM's engine core and workers as members; stopping it signals the
group. But the leader can die alone: Ray SIGKILLs a dead actor's direct children (``ray.kill``,
``ray.shutdown``: Ray's ``kill_child_processes_on_worker_exit``), the OOM killer picks it, it
crashes. vLLM's engine core does not notice, is reparented to init and keeps its memory
(seen: an ``EngineCore`` + worker pair, 2.4 GiB each, after every Ray replicas test). And a
server owned by one command or test session (``exit_with_parent``) must end when that process
is gone, even when it was killed without cleaning up.

So the launcher starts this guardian, ``python -m models.guardian LEADER OWNER GRACE_S
POLL_S``, as a member of its group, before vLLM starts. It ignores SIGTERM and SIGINT and polls
the leader every ``POLL_S`` seconds. Once the leader has exited, or its parent is no longer
``OWNER`` (0: no owner), it SIGTERMs the group, waits up to ``GRACE_S`` seconds for the other
members to exit and SIGKILLs the group (itself included) if any is left; it exits as soon as
they are gone, so a server stopped the ordinary way is not held up. A thread of the server
would die with it, and a child of the owner would be killed by Ray with the leader: a member
of the group that is nobody's thread is the one place that sees both deaths.

A launcher that does not lead its group (started by hand, not by ``models.server``) gets a
guardian only with an owner, and then only the launcher itself is ended, not the group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable

from models.processes import escalate, group_members, parent_pid, pid_running, start_watcher, watcher_ready

GRACE_S = 20.0
"""Seconds the group's members get between SIGTERM and SIGKILL."""
POLL_S = 0.5
"""Seconds between looks at the leader (and at the group while it shuts down)."""


def start_guardian(owner: int | None, *, grace_s: float | None = None, poll_s: float | None = None) -> int | None:
    """Starts the guardian of this process (the leader) and returns its pid once it ignores
    SIGTERM; None when there is nothing to guard (not a group leader and no owner) or it could
    not start (said on stderr: the server then runs unguarded).

    Args:
        owner: The pid whose death ends the server (its parent at start-up), or None.
        grace_s: Seconds between the group's SIGTERM and its SIGKILL (default ``GRACE_S``).
        poll_s: Seconds between the guardian's looks at the leader (default ``POLL_S``).
    """
    grace_s = GRACE_S if grace_s is None else grace_s
    poll_s = POLL_S if poll_s is None else poll_s
    leader = os.getpid()
    if os.getpgrp() != leader and not owner:
        return None
    return start_watcher("models.guardian", [str(leader), str(owner or 0), str(grace_s), str(poll_s)],
                         what=f"a killed server {leader} may leave its engine processes behind")


def serving(leader: int, owner: int) -> bool:
    """The leader is alive and (with an owner) still the owner's child."""
    if not pid_running(leader):
        return False
    if not owner:
        return True
    parent = parent_pid(leader)
    return parent == owner if parent is not None else pid_running(owner)


def guard(leader: int, owner: int, *, grace_s: float = GRACE_S, poll_s: float = POLL_S) -> None:
    """Waits while the leader serves, then ends its group (or only it, when it does not lead
    one). Returns when every other member is gone (or does not return: SIGKILLed with them)."""
    while serving(leader, owner):
        time.sleep(poll_s)
    group = os.getpgrp()
    if group != leader:  # not our own group to end: only the leader, if it still runs
        _end([leader], lambda: [leader] if pid_running(leader) else [], grace_s, poll_s)
        return
    me = os.getpid()

    def others() -> list[int]:
        members = group_members(group)
        if members is None:  # no /proc: the leader's liveness is all there is to go by
            return [leader] if pid_running(leader) else []
        return [p for p in members if p != me]

    sys.stderr.write(f"ponder guardian: server {leader} "
                     f"{'exited' if not pid_running(leader) else 'lost its owner ' + str(owner)}; "
                     f"ending its process group {group}\n")
    _end(None, others, grace_s, poll_s)


def _end(pids: list[int] | None, left: Callable[[], list[int]], grace_s: float, poll_s: float) -> None:
    """SIGTERM ``pids`` (None: our group), wait up to ``grace_s`` s until ``left()`` is empty,
    then SIGKILL them (with ``pids`` None this process goes too)."""

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pids is None:
                os.killpg(os.getpgrp(), sig)
            else:
                for pid in pids:
                    os.kill(pid, sig)

    escalate(send, lambda: bool(left()), grace_s=grace_s, poll_s=min(poll_s, 0.2))


def main(argv: list[str] | None = None) -> None:
    """``python -m models.guardian LEADER OWNER GRACE_S POLL_S``."""
    leader, owner, grace_s, poll_s = (argv if argv is not None else sys.argv[1:])
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM is for the server, not us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watcher_ready()  # the launcher goes on
    guard(int(leader), int(owner), grace_s=float(grace_s), poll_s=float(poll_s))


if __name__ == "__main__":
    main()
