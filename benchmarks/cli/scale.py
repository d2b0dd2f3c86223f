"""`ponder bench replicas`: N replicas on this machine, tree-affine vs per-request routing."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from benchmarks.cli.options import BlockSize, KvCacheGib, print_header, server_settings, stage_printer
from ponder.cli.common import fail
from search.protocols import PonderError


def replicas(
    replicas: Annotated[int, typer.Option(help="Replicas started on this machine (a split of the cores each).")] = 2,
    problems: Annotated[int, typer.Option(help="chain_sum problems of the MCTS workload.")] = 16,
    max_in_flight: Annotated[int, typer.Option(help="Requests in flight across the replicas.")] = 32,
    block_size: BlockSize = None,
    kv_cache_gib: KvCacheGib = 1,
    order: Annotated[str, typer.Option(help="Routings to run, in order, comma-separated.")] = "request,tree",
) -> None:
    """Tree-affine vs per-request routing on N replicas: prefix-cache hit rate, prompt tokens computed, tok/s."""
    from benchmarks.replicas import lines, measure, workload
    from benchmarks.search_runs import machine_note, override
    from models.client import VLLMClient, served_model
    from models.replicas import ensure_replicas
    from verifiers.tasks import load_tasks

    routings = [r.strip() for r in order.split(",") if r.strip()]
    if not routings or set(routings) - {"tree", "request"}:
        fail(typer.BadParameter(f"--order {order!r}: a comma-separated list of tree and request"))
    say = stage_printer()
    # dev mode: POST /reset_prefix_cache, so each routing starts from cold caches
    os.environ.setdefault("VLLM_SERVER_DEV_MODE", "1")
    try:
        cfg = override(workload(problems), {"model": {"max_in_flight": max_in_flight}})
        tasks = load_tasks(cfg.tasks)
        settings = server_settings(None, block_size, kv_cache_gib)
        with ensure_replicas(replicas, settings, on_progress=say) as servers:
            endpoints = [s.endpoint for s in servers]
            desc = ", ".join(f"{s.endpoint} (cores {s.settings.omp_threads_bind}, pid {s.record.pid})" for s in servers)
            print_header("replicas", f"{len(servers)} replicas: {desc}; kv_cache_gib={settings.resolved_kv_cache_gib()}, "
                         f"dtype={settings.resolved_dtype()}, block_size={settings.block_size}", [cfg])

            async def go():
                name = await served_model(endpoints[0])
                say("warming up each replica")
                for e in endpoints:  # first requests of a fresh server are slower: not in either run
                    async with VLLMClient(e, name) as client:
                        await asyncio.gather(*(client.complete(list(range(100, 164)), max_tokens=8) for _ in range(4)))
                # an untimed 2-problem run first: the first run in a process pays one-off costs
                # (imports, the answer checker's workers: ~8 s measured with fake servers)
                small = override(cfg, {"tasks": {"size": 2}})
                await measure(small, load_tasks(small.tasks), endpoints, name, routings[0], say)
                return [await measure(cfg, tasks, endpoints, name, r, say) for r in routings]

            runs = asyncio.run(go())
    except PonderError as err:
        fail(err)
    print("\n".join(lines(runs)))
    print(f"machine at the end: {machine_note()}")
