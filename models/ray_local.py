"""A local Ray that ponder starts ends with the ponder process that started it.

``ray.init(address="local")`` starts a Ray node as children of the calling process (the GCS,
the raylet, the dashboard, the log and autoscaler monitors), and the raylet starts the
dashboard and runtime-env agents and the workers. Ray ties the first ones to the caller
(``PR_SET_PDEATHSIG``: SIGKILLed with it) and the workers see their raylet go within seconds,
but the two agents, once they see the raylet gone, first report its death to the GCS, which is
dead too, and exit only when that call gives up: a SIGKILLed ``ponder run`` (``drivers: N``,
``model.cluster.address: local``) left ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent``
running for about a minute (Ray 2.60: 50-110 s; their log says "Raylet is dead" 4 s after the
kill and "SystemExit" 60 s after that). A command killed again and again (tests, a scheduler's
retries) piles them up.

So :func:`start_local_ray` starts, right after ``ray.init``, a watcher: ``python -m
models.ray_local OWNER POLL_S GRACE_S ROOT...``, a process of its own session (a signal to the
command's process group does not reach it; it ignores SIGINT and SIGTERM). The roots are the
node's processes ``ray.init`` started (the caller's children run from Ray's package). Every
``POLL_S`` seconds it notes the roots' children (agents, workers) by pid and start time. When
the owner is gone (killed or exited) or every root is (``ray.shutdown``), it SIGTERMs whatever
it noted that still runs, waits up to ``GRACE_S`` seconds and SIGKILLs the rest, then exits.
It ends only processes it saw as the roots' children, checked by start time, so never another
Ray cluster's nor a reused pid's. A worker's own children are the worker's business (a replica
actor's vLLM server has its guardian, :mod:`models.guardian`, which ends it with the worker).

A Ray that ponder only connects to (``address: auto``, ``ray://...``) is not ponder's to end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from models import processes
from models.processes import children_of, cmdline, process_identity

POLL_S = 0.5
"""Seconds between the watcher's looks at the owner and the node's processes."""
GRACE_S = 5.0
"""Seconds the node's processes get between SIGTERM and SIGKILL."""

Identity = tuple[int, float]


def start_local_ray(**init_kwargs: Any) -> int | None:
    """``ray.init(address="local", **init_kwargs)`` and the watcher that ends that node with
    this process; returns the watcher's pid (None where it could not start: said on stderr)."""
    import ray

    ray.init(address="local", **init_kwargs)
    return start_watcher(os.getpid(), ray_roots(os.getpid()))


def ray_roots(owner: int) -> list[int]:
    """``owner``'s children that run a program of Ray's package (its node's processes)."""
    import ray

    package = str(Path(ray.__file__).resolve().parent) + os.sep
    roots = []
    for pid in children_of([owner]) or []:
        args = cmdline(pid) or []
        if any(a.decode(errors="replace").startswith(package) for a in args[:3]):  # program, or python [-u] script
            roots.append(pid)
    return roots


def start_watcher(owner: int, roots: list[int], *, poll_s: float = POLL_S, grace_s: float = GRACE_S) -> int | None:
    """Starts the watcher of ``roots`` for ``owner`` and returns its pid once it has noted
    them; None when there is nothing to watch or it could not start."""
    if not roots:
        return None
    return processes.start_watcher(
        "models.ray_local", [str(owner), str(poll_s), str(grace_s), *map(str, roots)], new_session=True,
        what="a killed command may leave Ray's agents running for a minute")


def _alive(ident: Identity) -> bool:
    return process_identity(ident[0]) == ident


def watch(owner: Identity, roots: list[Identity], *, poll_s: float = POLL_S, grace_s: float = GRACE_S,
          ready: Any = None) -> list[Identity]:
    """Notes the roots' children while the owner and a root live, then ends every noted
    process still running (roots included). Returns what it had to signal."""
    noted: dict[int, Identity] = {r[0]: r for r in roots}
    while True:
        live_roots = [r for r in roots if _alive(r)]
        for pid in children_of([r[0] for r in live_roots]) or []:
            ident = process_identity(pid)
            if ident is not None and pid not in noted:
                noted[pid] = ident
        if ready is not None:
            ready()
            ready = None
        if not live_roots or not _alive(owner):
            break
        time.sleep(poll_s)
    left = [i for i in noted.values() if _alive(i)]
    if left:
        sys.stderr.write(f"ponder: the local Ray of process {owner[0]} is over; ending {len(left)} of its "
                         "processes left\n")
        _end(left, grace_s, poll_s)
    return left


def _end(idents: list[Identity], grace_s: float, poll_s: float) -> None:
    def send(sig: signal.Signals) -> None:
        for ident in idents:
            if _alive(ident):  # the same process still: never a reused pid
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(ident[0], sig)

    processes.escalate(send, lambda: any(_alive(i) for i in idents), grace_s=grace_s, poll_s=min(poll_s, 0.2))


def main(argv: list[str] | None = None) -> None:
    """``python -m models.ray_local OWNER POLL_S GRACE_S ROOT...``."""
    owner, poll_s, grace_s, *roots = argv if argv is not None else sys.argv[1:]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a signal to the command is not for us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    owner_id = process_identity(int(owner))
    root_ids = [i for i in (process_identity(int(r)) for r in roots) if i is not None]

    if owner_id is None:  # already gone: end the roots now
        processes.watcher_ready()
        watch((int(owner), -1.0), root_ids, poll_s=float(poll_s), grace_s=float(grace_s))
        return
    watch(owner_id, root_ids, poll_s=float(poll_s), grace_s=float(grace_s), ready=processes.watcher_ready)


if __name__ == "__main__":
    main()
