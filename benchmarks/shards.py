"""Several drivers, one writer: the problems of one run sharded over Ray actors (issue 26 §4).

One driver process dispatches at most what one core allows (``benchmarks.driver``: its
HTTP client alone costs about a millisecond of CPU per request). Past that, the problems
are split over ``drivers`` Ray actors (:class:`ShardDriver`), each the same single asyncio
process with the same scheduler, client and answer checker (``ponder.run.run_config`` on its
shard: problem ``i`` goes to driver ``i mod drivers``), all against the same replicas. Every
finished problem's result row goes to one :class:`RowWriter` actor, which appends it to one
``results.jsonl`` and counts a problem recorded twice; each driver keeps its shard's traces in
a directory of its own.

The drivers start searching together (a barrier after each has opened its engine), so the
aggregate step requests/s is the replicas' completions from that moment to the last driver's
end, over that time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from ponder.config import RunConfig, parse_run_config


class RowWriter:
    """The one writer: appends each driver's result rows to ``results.jsonl``; a barrier that
    lets the drivers start searching together (``@ray.remote`` applied by :func:`run_sharded`)."""

    def __init__(self, path: str, drivers: int) -> None:
        self.path, self.drivers = Path(path), drivers
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ids: dict[str, int] = {}
        self.arrived = 0
        self.released_at: float | None = None

    def record(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        self.ids[row["id"]] = self.ids.get(row["id"], 0) + 1

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived == self.drivers:
            self.released_at = time.time()

    def released(self) -> float | None:
        return self.released_at

    def summary(self) -> dict[str, int]:
        return {"rows": sum(self.ids.values()), "problems": len(self.ids),
                "twice": sum(1 for n in self.ids.values() if n > 1)}


class ShardDriver:
    """One driver: ``run_config`` on its shard of the problems, rows sent to the writer."""

    def __init__(self, cfg: dict[str, Any], index: int, drivers: int, writer: Any) -> None:
        self.cfg, self.index, self.drivers, self.writer = parse_run_config(cfg), index, drivers, writer

    def run(self) -> dict[str, float]:
        import ray

        from ponder.run import run_config
        from verifiers.tasks import load_tasks

        tasks = load_tasks(self.cfg.tasks)
        mine = tasks.without([p.id for k, p in enumerate(tasks.problems) if k % self.drivers != self.index])
        cfg = self.cfg.model_copy(update={"run_dir": f"{self.cfg.run_dir}/shard{self.index}"})
        window: dict[str, float] = {}

        def on_progress(message: str) -> None:
            if not message.startswith("searching"):
                return
            ray.get(self.writer.arrive.remote())
            while ray.get(self.writer.released.remote()) is None:  # the loop has nothing to run yet
                time.sleep(0.02)
            window.update(cpu=time.process_time(), wall=time.time())

        def on_row(row: dict[str, Any]) -> None:
            self.writer.record.remote(row)

        async def go() -> None:
            await asyncio.to_thread(mine.warm)
            await run_config(cfg, on_row=on_row, tasks=mine, warm_up_server=False, on_progress=on_progress)

        asyncio.run(go())
        return {"cpu_s": time.process_time() - window["cpu"], "start": window["wall"], "end": time.time(),
                "problems": len(mine.problems)}


@dataclasses.dataclass(frozen=True)
class ShardedRun:
    drivers: int
    problems: int
    rows: int
    twice: int
    requests: float
    wall_s: float
    driver_cpu_s: tuple[float, ...]

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0


def run_sharded(cfg: RunConfig, drivers: int, endpoints: list[str], counters: Any) -> ShardedRun:
    """Runs ``cfg`` as ``drivers`` Ray actors (a local Ray is started if none is) and one
    writer; ``counters()`` sums the replicas' completions (read before and after)."""
    import ray

    from models.ray_replicas import init_ray

    started = init_ray("local")
    try:
        writer = ray.remote(RowWriter).options(num_cpus=0).remote(str(Path(cfg.resolved_run_dir) / "results.jsonl"),
                                                                  drivers)
        remote = ray.remote(ShardDriver).options(num_cpus=0)
        data = cfg.model_dump(mode="json")
        before = counters()  # no request is sent before the barrier (no warm-up)
        actors = [remote.remote(data, i, drivers, writer) for i in range(drivers)]
        results = ray.get([a.run.remote() for a in actors])
        after = counters()
        summary = ray.get(writer.summary.remote())
        released = ray.get(writer.released.remote())
        end = max(r["end"] for r in results)
        for a in actors:
            ray.kill(a)
        ray.kill(writer)
    finally:
        if started:
            ray.shutdown()
    return ShardedRun(drivers=drivers, problems=sum(int(r["problems"]) for r in results), rows=summary["rows"],
                      twice=summary["twice"], requests=after - before, wall_s=end - released,
                      driver_cpu_s=tuple(r["cpu_s"] for r in results))
