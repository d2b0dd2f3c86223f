"""The command's side of a sharded run (see :mod:`ponder.shards`): the run directory and the
servers held here, the driver actors started, supervised and replaced, rows and events passed
on, the servers restarted once for every driver."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.processes import process_identity
from models.server import ProgressFn
from ponder.config import RunConfig, parse_run_config
from ponder.run import RunOutcome, resolve_saved
from ponder.rundir import open_run
from ponder.shards.actors import ShardDriver, ShardError, ShardWriter
from search.protocols import ConfigError, EngineFault
from verifiers.tasks import TaskSet

DRIVER_RESTARTS = 2
"""New driver actors a shard gets after its driver dies, before the run stops."""

ACTOR_PREFIX = "ponder-driver-"
"""Driver actors are named ``ponder-driver-RUN-INDEX.ATTEMPT`` (``ray.util.list_named_actors``)."""


@dataclasses.dataclass(frozen=True)
class DriverReport:
    """What one driver actor did: its shard, CPU seconds while searching, its search's start
    and end (wall-clock seconds since the epoch), peak requests in flight, engine counts."""

    index: int
    problems: int
    cpu_s: float
    start: float
    end: float
    peak_in_flight: int
    stats: dict[str, int]


@dataclasses.dataclass
class ShardedOutcome(RunOutcome):
    """A sharded run's :class:`~ponder.run.RunOutcome` (rows of every shard, wall from the
    drivers' common start to the last one's end, peak in flight summed) and each driver's report."""

    drivers: tuple[DriverReport, ...] = ()
    lost_drivers: int = 0


def driver_config(cfg: RunConfig, served: Any, reward_served: Any | None) -> RunConfig:
    """The drivers' config: ``cfg`` with the command's servers as its endpoints, one driver,
    ``model.target_in_flight`` (where the servers saturate) split among the drivers, paths
    absolute (a driver actor's working directory is not the command's)."""
    data = cfg.model_dump(mode="json")
    target = cfg.model.target_in_flight  # the servers' saturation point: shared by the drivers
    model = {**data["model"], "endpoints": list(served.endpoints), "model": served.name, "replicas": 1,
             "target_in_flight": -(-target // cfg.drivers) if target else None,
             "cluster": None, "checkpoint": str(Path(served.checkpoint).expanduser().resolve()) if served.checkpoint
             else None}
    data.update(model=model, drivers=1, run_dir=str(cfg.resolved_run_dir.resolve()))
    if (data.get("tasks") or {}).get("path"):
        data["tasks"]["path"] = str(Path(data["tasks"]["path"]).resolve())
    if reward_served is not None:
        data["reward"].update(endpoints=list(reward_served.endpoints), model=reward_served.name)
    if data.get("reward") and data["reward"].get("checkpoint"):
        data["reward"]["checkpoint"] = str(Path(data["reward"]["checkpoint"]).expanduser().resolve())
    return parse_run_config(data)


async def run_sharded(cfg: RunConfig, tasks: TaskSet, *, on_row: Callable[[dict[str, Any]], None] | None = None,
                      on_event: Callable[[dict[str, Any]], None] | None = None,
                      on_progress: ProgressFn | None = None, warm_up_server: bool = True) -> ShardedOutcome:
    """Runs ``cfg`` (``cfg.drivers`` > 1) as driver actors and one writer; see the module.

    ``on_row`` / ``on_event`` receive the drivers' rows and events as the writer writes them
    (polled, a quarter of a second behind). Raises ``EngineFault`` when a driver's engine gave
    up or a shard's drivers kept dying (the problems not recorded stay unfinished: a re-run
    resumes them), ``Interrupted`` on SIGINT / SIGTERM.
    """
    from ponder.engine import model_endpoints, reward_endpoints

    async with open_run(cfg.resolved_run_dir, cfg.model_dump(mode="json"), on_event, resolve=resolve_saved) as rec:
        done = rec.done
        pending = [p.id for p in tasks.problems if p.id not in done]
        shards = [pending[i::cfg.drivers] for i in range(min(cfg.drivers, len(pending)))]
        if not shards:
            return ShardedOutcome(list(rec.run_dir.rows().values()), len(done), 0.0, 0, {})
        with model_endpoints(cfg.model, on_progress, rec.event) as served, \
                reward_endpoints(cfg.reward, on_progress) as reward_served:
            run = _Sharded(cfg, driver_config(cfg, served, reward_served), rec, shards, on_row, on_event,
                           on_progress, warm_up_server,
                           {**served.restart_fns, **(reward_served.restart_fns if reward_served else {})})
            rec.stats_fn = run.stats
            with run.actors(list(done)):
                await rec.until_stopped(run.supervise(), len(tasks.problems))
        rows = list(rec.run_dir.rows().values())
    reports = run.reports
    wall = max(r.end for r in reports) - run.released_at if reports and run.released_at else 0.0
    return ShardedOutcome(rows, len(done), wall, sum(r.peak_in_flight for r in reports), run.stats(),
                          drivers=tuple(sorted(reports, key=lambda r: r.index)), lost_drivers=run.lost)


@dataclasses.dataclass
class _Shard:
    index: int
    attempt: int
    ids: list[str]
    actor: Any = None

    def token(self, run: str) -> str:
        return f"{run}-{self.index}.{self.attempt}"


class _Sharded:
    """The command's side of one sharded run: the actors, the supervision loop, restarts."""

    def __init__(self, cfg: RunConfig, driver_cfg: RunConfig, rec: Any, shards: list[list[str]],
                 on_row: Callable[[dict[str, Any]], None] | None,
                 on_event: Callable[[dict[str, Any]], None] | None, on_progress: ProgressFn | None,
                 warm: bool, restart_fns: dict[str, Any]) -> None:
        self.cfg, self.driver_data, self.rec = cfg, driver_cfg.model_dump(mode="json"), rec
        self.shards = [_Shard(i, 0, ids) for i, ids in enumerate(shards)]
        self.on_row, self.on_event, self.on_progress, self.warm = on_row, on_event, on_progress, warm
        self.restart_fns = restart_fns
        self.urls = {name: name for name in restart_fns}
        self.run_id = uuid.uuid4().hex[:8]
        self.reports: list[DriverReport] = []
        self.released_at: float | None = None
        self.restarts = 0
        self.lost = 0
        self.writer: Any = None
        self._restarting: set[asyncio.Task] = set()

    def stats(self) -> dict[str, int]:
        """Outages (the most any driver saw: each sees every outage of a server it uses) and the
        restarts this command made."""
        return {"outages": max((r.stats.get("outages", 0) for r in self.reports), default=0),
                "restarts": self.restarts}

    def _say(self, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(message)

    @contextlib.contextmanager
    def actors(self, finished: list[str]):
        """Ray (the cluster's, else one started here), the writer on this node; everything
        killed when the block ends."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from models.ray_replicas import init_ray

        started = init_ray("local")
        try:
            here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
            self.writer = ray.remote(ShardWriter).options(num_cpus=0, scheduling_strategy=here).remote(
                str(self.cfg.resolved_run_dir.resolve()), len(self.shards), finished,
                process_identity(os.getpid()))
            self._remote = ray.remote(ShardDriver)
            try:
                yield
            finally:
                for shard in self.shards:
                    if shard.actor is not None:
                        with contextlib.suppress(Exception):
                            ray.kill(shard.actor, no_restart=True)
                with contextlib.suppress(Exception):
                    ray.kill(self.writer, no_restart=True)
        finally:
            if started:
                ray.shutdown()

    def _start(self, shard: _Shard) -> asyncio.Future:
        shard.actor = self._remote.options(name=ACTOR_PREFIX + shard.token(self.run_id), num_cpus=0, max_restarts=0,
                                           max_task_retries=0, scheduling_strategy="SPREAD").remote(
            self.driver_data, shard.index, shard.token(self.run_id), shard.ids, self.writer,
            sorted(self.restart_fns), self.warm)

        async def result() -> dict[str, Any]:
            return await shard.actor.run.remote()

        return asyncio.ensure_future(result())

    async def supervise(self) -> None:
        from ray.exceptions import RayActorError

        self._say(f"starting {len(self.shards)} driver actors for {sum(len(s.ids) for s in self.shards)} problems")
        running = {self._start(s): s for s in self.shards}
        try:
            while running:
                finished, _ = await asyncio.wait(running, timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
                if self.released_at is None:
                    self.released_at = (await self._ask(self.writer.counts))["released_at"]
                    if self.released_at is not None:
                        self._say(f"searching on {len(self.shards)} drivers")
                await self._pump()
                for future in finished:
                    shard = running.pop(future)
                    try:
                        report = future.result()
                    except RayActorError as err:
                        again = await self._lost(shard, err)
                        if again is not None:
                            running[self._start(again)] = again
                        continue
                    if "fault" in report:
                        raise EngineFault(*report["fault"])
                    if "config_error" in report:
                        raise ConfigError(*report["config_error"])
                    if "error" in report:
                        raise ShardError(f"driver {report['index']} stopped: {report['error']}")
                    self.reports.append(DriverReport(report["index"], report["problems"], report["cpu_s"],
                                                     report["start"], report["end"], report["peak_in_flight"],
                                                     report["stats"]))
            await self._pump()
            if self._restarting:  # a restart begun ends before the servers are stopped (none left behind)
                await asyncio.gather(*self._restarting, return_exceptions=True)
        finally:
            for future in running:
                future.cancel()
            for task in self._restarting:
                task.cancel()

    async def _ask(self, method: Any, *args: Any) -> Any:
        """A call to the writer; its death is an engine fault (what it wrote stays, a re-run
        resumes the rest)."""
        from ray.exceptions import RayActorError

        try:
            return await method.remote(*args)
        except RayActorError as err:
            raise EngineFault("the run's writer", f"its actor died ({type(err).__name__}): re-run to resume") from err

    async def _lost(self, shard: _Shard, err: BaseException) -> _Shard | None:
        """A dead driver: killed for good, revoked at the writer; its unrecorded problems go to a
        new driver actor (None when it had none left)."""
        import ray

        with contextlib.suppress(Exception):
            ray.kill(shard.actor, no_restart=True)
        recorded = set(await self._ask(self.writer.revoke, shard.token(self.run_id)))
        left = [i for i in shard.ids if i not in recorded]
        self.lost += 1
        cause = str(err).splitlines()[0] if str(err) else type(err).__name__
        self.rec.event({"event": "driver_lost", "driver": shard.index, "time": time.time(), "cause": cause,
                        "unfinished": len(left)})
        if not left:
            return None
        if shard.attempt >= DRIVER_RESTARTS:
            raise EngineFault(f"driver {shard.index}", f"its driver actor died {shard.attempt + 1} times "
                              f"({cause}); {len(left)} of its problems are unfinished: re-run to resume them")
        again = _Shard(shard.index, shard.attempt + 1, left)
        self.shards.append(again)
        self.rec.event({"event": "driver_restarted", "driver": shard.index, "time": time.time(),
                        "problems": len(left)})
        return again

    async def _pump(self) -> None:
        """Passes the writer's new rows and events on, and starts the restarts drivers asked for."""
        rows, events, wanted = await self._ask(self.writer.take)
        for row in rows:
            if self.on_row is not None:
                self.on_row(row)
        for event in events:
            if self.on_event is not None:
                self.on_event(event)
        for name in wanted:
            task = asyncio.ensure_future(self._restart(name))
            self._restarting.add(task)
            task.add_done_callback(self._restarting.discard)

    async def _restart(self, name: str) -> None:
        """Restarts server ``name`` unless it answers already (another driver's request got
        there first), and tells the writer where it is now."""
        from models.server import is_healthy

        try:
            if not await asyncio.to_thread(is_healthy, self.urls[name], 5.0):
                self.urls[name] = await self.restart_fns[name]()
                self.restarts += 1
            await self.writer.restarted.remote(name, self.urls[name], None)
        except Exception as err:  # noqa: BLE001 - the drivers' breakers fail the endpoint with it
            await self.writer.restarted.remote(name, None, f"{type(err).__name__}: {err}")


def driver_actors() -> list[str]:
    """Names of the driver actors alive now (tests kill one by name)."""
    import ray

    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(ACTOR_PREFIX)]


__all__ = ["DRIVER_RESTARTS", "DriverReport", "ShardedOutcome", "driver_actors", "driver_config", "run_sharded"]
