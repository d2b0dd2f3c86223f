"""A local vLLM server that one command relies on: found or started, restarted, stopped.

:func:`ensure_server` yields a :class:`ManagedServer`: the recorded server (``ponder serve``)
when it serves the wanted checkpoint, else a new one that the command owns. Either way
ponder may restart it after a crash (:meth:`ManagedServer.restart`, driven by the client's
circuit breaker); a server the command started is stopped when the command ends, one it
found keeps running (and a restart of it is recorded again, as ``ponder serve`` would).
A server a command starts is never recorded: another command must not reuse (and load, or
lose when its owner ends) a server whose life belongs to one command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path

from models.processes import pid_running
from models.records import ServerRecord, replace_record
from models.server import (
    ProgressFn,
    ServerSettings,
    port_in_use,
    server_status,
    start_server,
    stop_server,
    terminate,
)

log = logging.getLogger(__name__)

_OWN: list[ManagedServer] = []
"""Servers this process started and still runs (``ensure_server`` blocks that are open)."""


_HANDED: dict[str, Callable[[], Awaitable[str]]] = {}
"""Restart functions of replicas this process runs other than through ``ensure_server``
(Ray replica actors, :func:`restartable` blocks that are open)."""


@contextlib.contextmanager
def restartable(restart_fns: Mapping[str, Callable[[], Awaitable[str]]]) -> Iterator[None]:
    """While the block runs, :func:`own_restart_fns` finds ``restart_fns`` too: replicas this
    command runs other than through :func:`ensure_server` (Ray replica actors)."""
    _HANDED.update(restart_fns)
    try:
        yield
    finally:
        for endpoint in restart_fns:
            _HANDED.pop(endpoint, None)


def own_restart_fns(endpoints: Iterable[str]) -> dict[str, Callable[[], Awaitable[str]]]:
    """Restart functions for those of ``endpoints`` that a server this process started
    serves: such a server is restarted when it dies even where its endpoint was handed on as a
    plain endpoint (a loop stage gives its servers to each of its runs that way). Other
    endpoints are external (waited for) and get none."""
    wanted = set(endpoints)
    out = {e: fn for e, fn in _HANDED.items() if e in wanted}
    out.update({s.endpoint: s.restart for s in _OWN if s.endpoint in wanted})
    return out


class ManagedServer:
    """A server ponder started or found, that it may restart.

    Args:
        settings: How to (re)start it.
        record: The running server.
        owned: This command started it (stop it at the end; it dies with the command).
        recorded: It is the server of the state file (a restart is recorded there too).
    """

    def __init__(self, settings: ServerSettings, record: ServerRecord, *, owned: bool, recorded: bool) -> None:
        self.settings = settings
        self.record = record
        self.owned = owned
        self.recorded = recorded
        self.restarts = 0

    @property
    def endpoint(self) -> str:
        return self.record.endpoint

    async def restart(self) -> str:
        """Restarts the server (in a worker thread; start-up takes ~25 s on CPU) and returns
        its endpoint: the same port when it is free again, else a new one."""
        return await asyncio.to_thread(self._restart)

    def _restart(self) -> str:
        old = self.record
        log.warning("restarting the vLLM server of %s (pid %d)", old.endpoint, old.pid)
        terminate(old.pid, timeout=10)  # what is left of its process group (vLLM's engine core)
        port = None if port_in_use(old.host, old.port) else old.port
        settings = self.settings.model_copy(update={"port": port, "host": old.host})
        self.record = start_server(settings, record=False, exit_with_parent=self.owned)
        if self.recorded:  # in the dead one's place (one of `ponder serve --replicas N`'s, say)
            replace_record(old, self.record)
        self.restarts += 1
        return self.record.endpoint

    def close(self) -> None:
        """Stops the server if this command started it."""
        if self.owned:
            stop_server(self.record)
        elif not pid_running(self.record.pid):
            log.info("the reused server %s is gone", self.record.endpoint)


@contextlib.contextmanager
def owned_servers(servers: list[ManagedServer]) -> Iterator[list[ManagedServer]]:
    """Servers this command started: restartable where their endpoints are handed on
    (:func:`own_restart_fns`) while the block runs, stopped when it ends."""
    _OWN.extend(servers)
    try:
        yield servers
    finally:
        for server in servers:
            _OWN.remove(server)
        for server in servers:
            server.close()


@contextlib.contextmanager
def ensure_server(
    checkpoint: Path | str | None = None, settings: ServerSettings | None = None, *,
    on_progress: ProgressFn | None = None,
) -> Iterator[ManagedServer]:
    """Yields a healthy server: the recorded one if it serves ``checkpoint``, else a new one.

    A server started here is not recorded (only ``ponder serve``'s is) and is stopped on
    exit; a reused one is left running. ``checkpoint=None`` means the embedded model.
    ``on_progress`` is told what the start-up is doing (phases of a new server's start, or
    the reuse of a recorded one).

    Raises:
        ModelServerError: as :func:`models.server.start_server`.
    """
    if settings is None:
        settings = ServerSettings(checkpoint=Path(checkpoint) if checkpoint is not None else None)
    elif checkpoint is not None:
        settings = settings.model_copy(update={"checkpoint": Path(checkpoint)})
    wanted = settings.resolved_checkpoint()
    status = server_status()
    if status is not None and status.healthy and status.record.checkpoint == wanted:
        log.info("reusing vLLM server pid %d on %s", status.record.pid, status.record.endpoint)
        if on_progress is not None:
            on_progress(f"reusing the vLLM server on {status.record.endpoint} (pid {status.record.pid})")
        found = settings.model_copy(update={"checkpoint": Path(status.record.checkpoint)})
        yield ManagedServer(found, status.record, owned=False, recorded=True)
        return
    server = ManagedServer(settings, start_server(settings, record=False, exit_with_parent=True,
                                                 on_progress=on_progress), owned=True, recorded=False)
    _OWN.append(server)
    try:
        yield server
    finally:
        _OWN.remove(server)
        server.close()
