"""`ponder bench replicas`: N replicas on this machine, tree-affine vs per-request routing; `ponder bench scale`:
the single driver's ceiling against N fake replicas."""

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
    ceiling: Annotated[bool, typer.Option(
        "--ceiling/--no-ceiling", help="Then stop the replicas and run the same workload on one server with all "
        "their cores and KV cache (cache emptied first): the hit rate with no routing, the ceiling of both.")] = False,
    system_prompt: Annotated[str | None, typer.Option(
        help="The workload's system prompt instead of the model's default, e.g. the worked-example prompt of "
        "configs/loop_stepwise.yaml (a longer shared prefix: the uncached tail block a smaller share).")] = None,
    shots: Annotated[int, typer.Option(
        min=0, help="Worked examples after the system prompt, as MATH / GSM8K harnesses prompt (4-8): chain_sum "
        "problems of the training split, none of the workload's, solved a step per line; 0: none.")] = 0,
) -> None:
    """Tree-affine vs per-request routing on N replicas: prefix-cache hit rate, prompt tokens computed, tok/s."""
    from benchmarks.replicas import CEILING, ceiling_settings, few_shot_prompt, lines, measure, workload
    from benchmarks.search_runs import machine_note, override
    from models.client import VLLMClient, served_model
    from models.managed import ManagedServer, owned_servers
    from models.embedded import embedded_checkpoint
    from models.replicas import ensure_replicas, start_replicas
    from models.tokenizer import HFTokenizer
    from ponder.config import DEFAULT_SYSTEM_PROMPT
    from verifiers.tasks import load_tasks

    routings = [r.strip() for r in order.split(",") if r.strip()]
    if not routings or set(routings) - {"tree", "request"}:
        fail(typer.BadParameter(f"--order {order!r}: a comma-separated list of tree and request"))
    say = stage_printer()
    # dev mode: POST /reset_prefix_cache, so each routing starts from cold caches
    os.environ.setdefault("VLLM_SERVER_DEV_MODE", "1")

    async def go(endpoints: list[str], plan: list[tuple[str, str | None]]):
        """Warms each server, makes an untimed small run, then one measured run per (routing, label)."""
        name = await served_model(endpoints[0])
        say("warming up each server")
        for e in endpoints:  # first requests of a fresh server are slower: not in any run
            async with VLLMClient(e, name) as client:
                await asyncio.gather(*(client.complete(list(range(100, 164)), max_tokens=8) for _ in range(4)))
        # an untimed 2-problem run first: the first run in a process pays one-off costs
        # (imports, the answer checker's workers: ~8 s measured with fake servers)
        small = override(cfg, {"tasks": {"size": 2}})
        await measure(small, load_tasks(small.tasks), endpoints, name, plan[0][0], say)
        return [await measure(cfg, tasks, endpoints, name, r, say, label=label) for r, label in plan]

    try:
        cfg = override(workload(problems, system_prompt), {"model": {"max_in_flight": max_in_flight}})
        tasks = load_tasks(cfg.tasks)
        settings = server_settings(None, block_size, kv_cache_gib)
        if shots:
            try:
                prompt = few_shot_prompt(shots, cfg.model.system_prompt or DEFAULT_SYSTEM_PROMPT,
                                         exclude=[p.question for p in tasks.problems])
            except ValueError as err:
                fail(typer.BadParameter(f"--shots {shots}: {err}"))
            cfg = override(cfg, {"model": {"system_prompt": prompt}})
            tokenizer = HFTokenizer(settings.checkpoint or embedded_checkpoint())
            say(f"system prompt: {shots} worked examples; the first problem's prompt is "
                f"{len(tokenizer.chat_prompt(tasks.problems[0].question, prompt))} tokens")
        with ensure_replicas(replicas, settings, on_progress=say) as servers:
            endpoints = [s.endpoint for s in servers]
            desc = ", ".join(f"{s.endpoint} (cores {s.settings.omp_threads_bind}, pid {s.record.pid})" for s in servers)
            print_header("replicas", f"{len(servers)} replicas: {desc}; kv_cache_gib={settings.resolved_kv_cache_gib()}, "
                         f"dtype={settings.resolved_dtype()}, block_size={settings.resolved_block_size()}", [cfg])
            runs = asyncio.run(go(endpoints, [(r, None) for r in routings]))
        if ceiling:
            one = ceiling_settings(settings, len(servers))
            say(f"{CEILING}: the replicas stopped; one server, cores {one.omp_threads_bind}, "
                f"kv_cache_gib={one.resolved_kv_cache_gib()}, block_size={one.resolved_block_size()}")
            # started here, never a recorded one: the ceiling needs its own cache, emptied
            single = [ManagedServer(s, rec, owned=True, recorded=False)
                      for s, rec in start_replicas(1, one, on_progress=say)]
            with owned_servers(single):
                print(f"{CEILING}: {single[0].endpoint} (pid {single[0].record.pid}), "
                      f"kv_cache_gib={one.resolved_kv_cache_gib()}; machine: {machine_note()}")
                runs += asyncio.run(go([single[0].endpoint], [("request", CEILING)]))
    except PonderError as err:
        fail(err)
    print("\n".join(lines(runs)))
    print(f"machine at the end: {machine_note()}")


def scale(
    replicas: Annotated[str, typer.Option(help="Fake replica counts, one measured run each, comma-separated.")]
    = "1,4,16,64",
    problems_per_replica: Annotated[int, typer.Option(help="chain_sum problems per replica of a run.")] = 64,
    concurrent_per_replica: Annotated[int, typer.Option(help="Problems searched at once per replica.")] = 32,
    max_problems: Annotated[int, typer.Option(help="At most this many problems in one run.")] = 8192,
    tokens_per_s: Annotated[float, typer.Option(help="A fake replica's decode speed per sequence.")] = 100.0,
    latency_s: Annotated[float, typer.Option(help="A fake replica's fixed seconds per request.")] = 0.02,
    max_num_seqs: Annotated[int, typer.Option(help="Sequences a fake replica decodes at once.")] = 64,
    prefill_tokens_per_s: Annotated[float, typer.Option(help="Uncached prompt tokens a fake computes per "
                                                        "second (0: free).")] = 20000.0,
    simulations: Annotated[int, typer.Option(help="MCTS simulations per problem (one request each).")] = 8,
    children: Annotated[int, typer.Option(help="Samples per request (MCTS num_children).")] = 3,
    profile_at: Annotated[int | None, typer.Option(help="cProfile the driver in the run with this many "
                                                   "replicas; the top functions are printed.")] = None,
    drivers: Annotated[str, typer.Option(help="Then: driver counts (Ray actors, one writer) to shard the same "
                                         "problems over, comma-separated; empty: none.")] = "",
    shard_replicas: Annotated[int, typer.Option(help="Fake replicas of the sharded runs.")] = 16,
    shard_problems: Annotated[int, typer.Option(help="Problems of each sharded run.")] = 2048,
) -> None:
    """The single driver's ceiling: 1..64 fake replicas (one process each), thousands of MCTS problems through
    the real scheduler, client and answer checker; step requests/s, driver CPU, share of the replicas' capacity."""
    from benchmarks.driver import (HEADER, SHARD_HEADER, machine, point_line, profile_lines, run_scale,
                                   run_shard_points, saturation_line, shard_line, step_pool)
    from benchmarks.fake_server import Replica
    from models.embedded import embedded_checkpoint
    from models.tokenizer import HFTokenizer

    try:
        counts = [int(x) for x in replicas.split(",") if x.strip()]
        driver_counts = [int(x) for x in drivers.split(",") if x.strip()]
    except ValueError:
        counts = driver_counts = []
    if not (counts or driver_counts) or min(counts + driver_counts) < 1:
        fail(typer.BadParameter(f"--replicas {replicas!r} / --drivers {drivers!r}: comma-separated counts >= 1"))
    say = stage_printer()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="ponder-bench-scale-steps-") as tmp:
        pool = step_pool(HFTokenizer(embedded_checkpoint()), Path(tmp) / "steps.json")
        replica = Replica(tokens_per_s=tokens_per_s, latency_s=latency_s, max_num_seqs=max_num_seqs,
                          prefill_tokens_per_s=prefill_tokens_per_s, steps_file=str(pool))
        print(f"== scale: fake replicas {counts}; each: {max_num_seqs} sequences at once, {tokens_per_s:g} tok/s "
              f"per sequence, {latency_s:g} s per request, prefill {prefill_tokens_per_s:g} tok/s, block prefix "
              f"cache; workload: MCTS (prior values) {simulations} simulations x {children} children, depth 6, "
              f"{problems_per_replica} chain_sum problems and {concurrent_per_replica} at once per replica "
              f"(at most {max_problems}); tree routing; machine: {machine()}")
        points, prof, shards = [], None, []
        try:
            if counts:
                print(HEADER, flush=True)
                points, prof = run_scale(counts, replica, problems_per_replica=problems_per_replica,
                                         concurrent_per_replica=concurrent_per_replica, simulations=simulations,
                                         children=children, max_problems=max_problems, profile_at=profile_at,
                                         on_progress=say, on_point=lambda p: print(point_line(p), flush=True))
                print(saturation_line(points))
            if driver_counts:
                shards = run_shard_points(shard_replicas, driver_counts, replica, problems=shard_problems,
                                          concurrent_per_driver=concurrent_per_replica * shard_replicas,
                                          simulations=simulations, children=children, on_progress=say)
                print(f"-- sharded: {shard_problems} problems on {shard_replicas} fake replicas, Ray driver actors, "
                      "one writer (rows: result rows it wrote; twice: problems recorded twice) --")
                print(SHARD_HEADER)
                print("\n".join(shard_line(r) for r in shards))
        except PonderError as err:
            fail(err)
    print(f"machine at the end: {machine()}")
    if prof is not None:
        print(f"-- cProfile of the driver at {profile_at} replicas (the event loop's thread) --")
        print("\n".join(profile_lines(prof)))
