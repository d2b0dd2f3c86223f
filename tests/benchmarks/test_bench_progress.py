"""Long benches are never silent: stage lines with elapsed seconds, a run's tenths, no warm-up
inside a measured run (its tokens would count in the server's counters)."""

from __future__ import annotations

import asyncio
import re

from benchmarks import search_runs
from benchmarks.cli.options import stage_printer
from benchmarks.suite import throughput_config
from ponder.run import RunOutcome
from verifiers.tasks import load_tasks


def test_stage_lines_carry_the_seconds_since_the_bench_began(capsys):
    say = stage_printer()
    say("saturation load before the run")
    assert re.fullmatch(r"\[\s+\d+\.\d s\] saturation load before the run\n", capsys.readouterr().out)


def test_a_measured_run_reports_its_tenths_and_skips_the_warm_up(monkeypatch):
    cfg = throughput_config(20, "chain_sum")
    tasks = load_tasks(cfg.tasks)
    seen: dict = {}

    async def run_config(cfg, on_row=None, tasks=None, warm_up_server=True):
        seen["warm_up_server"] = warm_up_server
        for p in tasks.problems:
            on_row({"id": p.id})
        return RunOutcome([], 0, 2.5, 1)

    async def nothing(client):
        return {}

    monkeypatch.setattr(search_runs, "run_config", run_config)
    monkeypatch.setattr(search_runs, "_warm_tokenizer", lambda cfg: None)
    monkeypatch.setattr(search_runs, "reset_prefix_cache", nothing)
    monkeypatch.setattr(search_runs, "snapshot", nothing)
    lines: list[str] = []
    asyncio.run(search_runs.measure_run(cfg, tasks, client=None, label="beam", on_progress=lines.append))
    assert seen["warm_up_server"] is False
    assert lines[0] == "run beam: 20 problems, step_beam" and lines[-1] == "run beam: done in 2.5 s"
    assert lines[1:-1] == [f"run beam: {k}/20 problems done" for k in range(2, 20, 2)]
