"""What runs inside Ray in a sharded run (see :mod:`ponder.shards`): the one writer, pinned to
the command's machine, and the driver actors, each searching its shard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from models.processes import process_identity
from ponder.config import parse_run_config
from ponder.rundir import RunDir
from search.protocols import ConfigError, EngineFault, PonderError


class ShardError(PonderError):
    """A driver actor stopped on an error of ponder's (not an engine fault): the run stops."""


class ShardWriter:
    """The one writer of a sharded run, a Ray actor pinned to the command's machine (``ray.remote``
    applied by :func:`~ponder.shards.supervisor.run_sharded`, so this module imports without Ray).

    It writes what the drivers finish into the run directory the command holds, refuses a
    second finished row of a problem and anything from a revoked driver, keeps the drivers'
    start barrier, and passes restart requests for the command's servers to the command.

    It writes only while the command that holds the run directory's lock lives: after a
    SIGKILL of the command, the actors live on until Ray notices (seconds), and a re-run may
    hold the lock by then.

    Args:
        run_dir: The (locked, by the command) run directory.
        drivers: Driver actors that start together.
        finished: Ids already finished in the run directory (resume).
        owner: The command's process (:func:`models.processes.process_identity`).
    """

    def __init__(self, run_dir: str, drivers: int, finished: list[str], owner: tuple[int, float]) -> None:
        self.run_dir = RunDir(run_dir)
        self.owner = owner
        self.drivers = drivers
        self.finished = set(finished)
        self.recorded_now: set[str] = set()
        self.revoked: set[str] = set()
        self.refused = 0
        self.arrived = 0
        self.released_at: float | None = None
        self._released: asyncio.Event | None = None
        self._rows: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._wanted: list[str] = []
        self._restarts: dict[str, asyncio.Future] = {}

    def _release(self) -> asyncio.Event:
        if self._released is None:
            self._released = asyncio.Event()
        return self._released

    async def arrive(self) -> float:
        """Returns (the time) once every driver has arrived: its engine open, its checker warm."""
        self.arrived += 1
        if self.arrived >= self.drivers and self.released_at is None:
            self.released_at = time.time()
            self._release().set()
        await self._release().wait()
        return self.released_at or time.time()

    async def record(self, token: str, row: dict[str, Any], trace: dict[str, Any] | None,
                     labels: list[dict[str, Any]] | None) -> bool:
        """Writes one finished problem (labels, trace, result line); False when refused: its
        driver was revoked, or the problem is already finished."""
        finishes = row.get("status") != "error"
        if token in self.revoked or (finishes and row["id"] in self.finished) or not self._owner_alive():
            self.refused += 1
            return False
        self.run_dir.record(row, trace, labels)  # no await inside: one record at a time
        if finishes:
            self.finished.add(row["id"])
        self.recorded_now.add(row["id"])
        self._rows.append(row)
        return True

    def _owner_alive(self) -> bool:
        return process_identity(self.owner[0]) == self.owner

    async def event(self, event: dict[str, Any]) -> None:
        if self._owner_alive():
            self.run_dir.event(event)
            self._events.append(event)

    async def revoke(self, token: str) -> list[str]:
        """Refuses whatever the driver ``token`` still sends; returns the ids recorded so far in
        this invocation (after the revocation, nothing of that driver's is added)."""
        self.revoked.add(token)
        return sorted(self.recorded_now)

    async def take(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        """The rows and events written, and the servers drivers asked to restart, since the last take."""
        out = self._rows, self._events, self._wanted
        self._rows, self._events, self._wanted = [], [], []
        return out

    async def restart(self, name: str) -> tuple[str | None, str | None]:
        """A driver's breaker asks for server ``name`` (an endpoint the command started) to be
        restarted; all asking at once share one restart. Returns (url, None) or (None, why)."""
        future = self._restarts.get(name)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._restarts[name] = future
            self._wanted.append(name)
        return await asyncio.shield(future)

    async def restarted(self, name: str, url: str | None, error: str | None) -> None:
        future = self._restarts.pop(name, None)
        if future is not None and not future.done():
            future.set_result((url, error))

    async def counts(self) -> dict[str, Any]:
        return {"released_at": self.released_at, "refused": self.refused, "recorded": len(self.recorded_now)}


class ShardDriver:
    """One driver: the engine opened on the handed endpoints, ``search_problems`` on its shard,
    each finished problem sent to the writer (``ray.remote`` applied by
    :func:`~ponder.shards.supervisor.run_sharded`).

    Args:
        cfg: The drivers' run config (as JSON: its model block the command's servers).
        index: This shard's number.
        token: This driver actor's identity at the writer (revoked if it is replaced).
        ids: The problems of its shard.
        writer: The :class:`ShardWriter` actor.
        restartable: Endpoints the command restarts (asked through the writer).
        warm: Warm the servers up first (``ponder.engine.open_engine``).
    """

    def __init__(self, cfg: dict[str, Any], index: int, token: str, ids: list[str], writer: Any,
                 restartable: list[str], warm: bool) -> None:
        self.cfg, self.index, self.token, self.ids = parse_run_config(cfg), index, token, ids
        self.writer, self.restartable, self.warm = writer, restartable, warm

    async def run(self) -> dict[str, Any]:
        """Searches the shard (on the actor's event loop: an async actor); returns what the
        command sums: times, CPU, peak, engine counts, or the engine fault that stopped it."""
        from models.managed import restartable
        from ponder.engine import open_engine
        from ponder.run import search_problems
        from verifiers.tasks import load_tasks

        cfg, writer = self.cfg, self.writer

        def on_event(event: dict[str, Any]) -> None:
            writer.event.remote({**event, "driver": self.index})

        async def record(row: dict[str, Any], trace_fn: Callable[[], Any] | None,
                         labels_fn: Callable[[], Any] | None) -> None:
            await writer.record.remote(self.token, row, trace_fn() if trace_fn else None,
                                       labels_fn() if labels_fn else None)

        try:
            every = load_tasks(cfg.tasks)  # the task source must be readable on this driver's node
            index = {p.id: i for i, p in enumerate(every.problems)}
            mine = set(self.ids)
            tasks = every.without([p.id for p in every.problems if p.id not in mine])
            if len(tasks.problems) != len(mine):
                raise ConfigError("tasks", str(getattr(cfg.tasks, "path", None) or cfg.tasks.source),
                                  f"driver {self.index} read {len(tasks.problems)} of its {len(mine)} problems from "
                                  "the task source: a sharded run's drivers read the tasks from the config, which "
                                  "must name the same problems on every node")
            warm = asyncio.ensure_future(asyncio.to_thread(tasks.warm))
            with restartable({name: self._restart_fn(name) for name in self.restartable}):
                async with open_engine(cfg.model, cfg.reward, on_event=on_event, warm=self.warm) as engine:
                    await warm
                    start = await writer.arrive.remote()
                    cpu = time.process_time()
                    await search_problems(cfg, engine, tasks, tasks.problems, index, record)
                    return {"index": self.index, "token": self.token, "problems": len(tasks.problems),
                            "cpu_s": time.process_time() - cpu, "start": start, "end": time.time(),
                            "peak_in_flight": engine.policy.peak_in_flight, "stats": engine.stats()}
        except EngineFault as fault:  # returned, not raised: ponder's errors cross the process as data
            return {"index": self.index, "token": self.token, "fault": [fault.endpoint, fault.cause]}
        except ConfigError as err:  # e.g. a task file this driver's node does not have
            return {"index": self.index, "token": self.token, "config_error": [err.field, err.value, err.reason]}
        except PonderError as err:
            return {"index": self.index, "token": self.token, "error": f"{type(err).__name__}: {err}"}

    def _restart_fn(self, name: str) -> Callable[[], Any]:
        async def restart() -> str:
            url, error = await self.writer.restart.remote(name)
            if url is None:
                raise EngineFault(name, error or "the command could not restart it")
            return url

        return restart


__all__ = ["ShardDriver", "ShardError", "ShardWriter"]
