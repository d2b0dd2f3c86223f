"""``ponder bench treepo``, ``prove`` and ``label``: the seed methods' own benchmarks,
registered on :data:`benchmarks.cli.bench_app` (kept apart so cli.py stays one page)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from benchmarks.cli.speed import BlockSize, ConfigArg, Endpoint, KvCacheGib, MaxInFlight, _fail, _header, _settings, bench_app
from search.protocols import PonderError


@bench_app.command("treepo")
def treepo(
    num_problems: Annotated[int, typer.Option(help="Problems of the workload.")] = 100,
    workload: Annotated[str, typer.Option(help="basic_arithmetic, gsm_symbolic or chain_sum (2-3 terms of 1-2 digits).")] = "basic_arithmetic",
    width: Annotated[list[int], typer.Option(help="Trajectories per prompt W (one pair of runs each).")] = [8, 16],
    segment_tokens: Annotated[int, typer.Option(help="TreePO segment length L (tokens); both sides' step format.")] = 32,
    max_depth: Annotated[int, typer.Option(help="Segments per trajectory at most (both sides: L x this tokens).")] = 8,
    concurrency: Annotated[int, typer.Option(help="Problems at once (max_concurrent_problems), both sides.")] = 16,
    search: Annotated[Optional[str], typer.Option(help="Extra TreePO settings as JSON, e.g. '{\"divergence\": 4}'.")] = None,
    align: Annotated[bool, typer.Option(help="TreePO segments aligned on the server's KV blocks (align_block = "
                                        "--block-size, or 32 as the bench's servers use).")] = True,
    out: Annotated[Optional[Path], typer.Option(help="JSON of the measured runs; default runs/bench-treepo/<UTC>.json.")] = None,
    max_in_flight: MaxInFlight = 256,
    endpoint: Endpoint = None,
    block_size: BlockSize = None,
    kv_cache_gib: KvCacheGib = None,
) -> None:
    """TreePO segment-tree sampling vs independent sampling at equal W: tokens, server compute, wall, pass@W."""
    import time

    from benchmarks.search_runs import bench_endpoint, override
    from benchmarks.treepo import measure_treepo, treepo_entries, treepo_json, treepo_lines
    from verifiers.tasks import load_tasks

    try:
        extra = json.loads(search) if search else None
        from models.server_settings import ServerSettings

        blocks = (block_size or ServerSettings().block_size) if align else None
        entries = treepo_entries(num_problems, width, segment_tokens, max_depth, concurrency, extra, workload, blocks)
        tasks = load_tasks(entries[0].cfg.tasks)
        with bench_endpoint(endpoint, _settings(None, block_size, kv_cache_gib)) as (url, desc):
            entries = [dataclasses.replace(e, cfg=override(e.cfg, {"model": {"endpoints": [url],
                       "max_in_flight": max_in_flight}})) for e in entries]
            _header("treepo", desc, [e.cfg for e in entries])
            points = asyncio.run(measure_treepo(entries, tasks, url))
    except (PonderError, ValueError) as err:
        _fail(err)
    print("\n".join(treepo_lines(points)))
    path = out or Path("runs/bench-treepo") / time.strftime("treepo-%Y%m%d-%H%M%S.json", time.gmtime())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(treepo_json(points) + "\n")
    print(f"runs: {path.resolve()}")


@bench_app.command("prove")
def prove(
    env: Annotated[str, typer.Option(help="auto (Coq when installed), coq or rewrite.")] = "auto",
    max_calls: Annotated[int, typer.Option(help="Tactic-generation requests per theorem (every config).")] = 4,
    expansion_width: Annotated[int, typer.Option(help="Tactics per request.")] = 4,
    max_expansions: Annotated[int, typer.Option(help="States expanded per attempt.")] = 4,
    limit: Annotated[Optional[int], typer.Option(help="At most this many theorems.")] = None,
    only: Annotated[Optional[list[str]], typer.Option(help="Only these configs (labels).")] = None,
    out: Annotated[Path, typer.Option(help="Parent of the configs' run dirs (resumable).")] = Path("runs/bench_prove"),
    endpoint: Endpoint = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Prover configs at equal generation budgets: 1 agent, 4 shared / unshared, with and without planner."""
    from benchmarks.prove import bench_configs, bench_prove, format_table
    from benchmarks.search_runs import machine_note

    try:
        cfgs = bench_configs(env, max_calls, limit, out, endpoint, seed, expansion_width, max_expansions, only)
        print("== ponder bench prove")
        print(f"machine: {machine_note()}")
        print(f"env: {cfgs[0].resolved_env}; budget: {max_calls} requests x {expansion_width} tactics per theorem; "
              f"{max_expansions} expansions per attempt")
        rows = asyncio.run(bench_prove(cfgs))
    except (PonderError, ValueError) as err:
        _fail(err)
    print(format_table(rows))


@bench_app.command("label")
def label(
    config: ConfigArg = None,
    num_problems: Annotated[int, typer.Option(help="Problems of the preset (chain_sum).")] = 100,
    num_rollouts: Annotated[int, typer.Option(help="Math-Shepherd's N: completions per step prefix.")] = 8,
    k: Annotated[int, typer.Option(help="OmegaPRM's k: completions per probed prefix.")] = 8,
    screen_rollouts: Annotated[int, typer.Option(help="OmegaPRM's screening completions from the root.")] = 32,
    max_rollout_tokens: Annotated[int, typer.Option(help="Token limit of one rollout completion.")] = 160,
    concurrency: Annotated[Optional[int], typer.Option(
        help="Problems at once (search, and each labelling phase); default: the config's max_concurrent_problems.")
    ] = None,
    max_in_flight: MaxInFlight = 256,
    saturation_concurrency: Annotated[list[int], typer.Option(
        help="Concurrencies of the saturation load before and after (max over them).")] = [128],
    out: Annotated[Optional[Path], typer.Option(
        help="JSON summary; default runs/bench-label/label-<UTC time>.json.")] = None,
    endpoint: Endpoint = None,
    block_size: BlockSize = None,
) -> None:
    """Math-Shepherd vs OmegaPRM labels on the same searched trees: rollouts, tokens, wall, agreement."""
    import time

    from benchmarks.label import LabelBenchSettings, label_config, label_lines, label_summary, run_label_bench
    from benchmarks.search_runs import bench_endpoint, machine_note, override
    from ponder.config import load_run_config
    from verifiers.tasks import load_tasks

    try:
        cfg = override(load_run_config(config) if config else label_config(num_problems), {"mode": "label"})
        settings = LabelBenchSettings(num_rollouts, k, screen_rollouts, max_rollout_tokens,
                                      concurrency or cfg.max_concurrent_problems)
        settings.generators()  # validates the generator settings before a server starts
        tasks = load_tasks(cfg.tasks)
        with bench_endpoint(endpoint or next(iter(cfg.model.endpoints), None),
                            _settings(cfg.model.checkpoint, block_size)) as (url, desc):
            cfg = override(cfg, {"model": {"endpoints": [url], "max_in_flight": max_in_flight},
                                 "max_concurrent_problems": settings.concurrency})
            _header("label", desc, [cfg])
            machine = machine_note()
            run, saturated = asyncio.run(run_label_bench(cfg, tasks, settings, url, saturation_concurrency))
    except (PonderError, ValueError) as err:
        _fail(err)
    summary = {"machine": machine, "server": desc, "config": cfg.model_dump(mode="json"),
               **label_summary(run, settings, saturated), "in_flight_cap": cfg.model.max_in_flight}
    print("\n".join(label_lines(summary)))
    if abs(saturated[0] - saturated[1]) > 0.15 * max(saturated):
        print(f"WARNING: the saturated figure moved > 15 % during the bench; ratios to it are unreliable. "
              f"Now: {machine_note()}")
    path = out or Path("runs/bench-label") / time.strftime("label-%Y%m%d-%H%M%S.json", time.gmtime())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"summary: {path.resolve()}")
