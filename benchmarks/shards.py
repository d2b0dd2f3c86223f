"""Several drivers, one writer: the driver-ceiling benchmark's sharded points (issue 26 §4).

One driver process dispatches at most what one core allows (``benchmarks.driver``: its
HTTP client alone costs about a millisecond of CPU per request). Past that, a run's problems
are sharded over driver actors: ``drivers: N`` in the run config, :mod:`ponder.shards` (each
the same single asyncio process with the same scheduler, client and answer checker on its
shard, all against the same replicas, every finished problem written by one writer into one
run directory). This module runs the same workload at each driver count and reads what it did:
the replicas' completions around the run, the search's wall from the drivers' common start to
the last one's end, each driver's CPU in that window, and whether a problem was written twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

from ponder.config import RunConfig, parse_run_config


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
    """Runs ``cfg`` (its endpoints the replicas) as ``drivers`` driver actors
    (``ponder.shards.supervisor.run_sharded``, one actor also for ``drivers`` = 1, so every point pays the
    same); ``counters()`` sums the replicas' completions, read before and after (no request is
    sent before the drivers start together: no warm-up)."""
    from ponder.shards.supervisor import run_sharded as run_shards
    from verifiers.tasks import load_tasks

    sharded = parse_run_config({**cfg.model_dump(mode="json"), "drivers": drivers,
                                "model": {**cfg.model.model_dump(mode="json"), "endpoints": list(endpoints)}})
    tasks = load_tasks(sharded.tasks)
    before = counters()
    outcome = asyncio.run(run_shards(sharded, tasks, warm_up_server=False))
    after = counters()
    results = Path(sharded.resolved_run_dir) / "results.jsonl"
    ids = Counter(json.loads(line)["id"] for line in results.read_text().splitlines() if line.strip())
    return ShardedRun(drivers=drivers, problems=sum(r.problems for r in outcome.drivers), rows=sum(ids.values()),
                      twice=sum(1 for n in ids.values() if n > 1), requests=after - before,
                      wall_s=outcome.wall_seconds, driver_cpu_s=tuple(r.cpu_s for r in outcome.drivers))
