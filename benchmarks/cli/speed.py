"""`ponder bench server | engine | throughput | compare | flat | parallel | view`: how fast the system is.

``server`` and ``engine`` measure the model server and the search core apart; ``throughput``
and ``compare`` run real searches on one shared server (:mod:`benchmarks.search_runs` for how
a run is measured, :mod:`benchmarks.suite` for presets); ``flat`` sets ponder's whole-solution
sampling beside a plain client (:mod:`benchmarks.flat`); ``parallel`` sets fixed and adaptive
in-tree parallelism side by side (:mod:`benchmarks.parallel`); ``view`` opens a big run's view in
headless Chromium (:mod:`benchmarks.view`). Each prints ratios taken in one run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from benchmarks.cli.options import (BlockSize, ConfigArg, Endpoint, MaxInFlight, for_run, print_header,
                                    server_settings, stage_printer)
from ponder.cli.common import fail
from search.protocols import PonderError


def server(
    endpoint: Endpoint = None,
    concurrency: Annotated[list[int], typer.Option(help="Concurrencies to measure.")] = [1, 8, 32, 64],
    max_tokens: Annotated[int, typer.Option(help="Generated tokens per request.")] = 128,
) -> None:
    """Generated tok/s at 1, 8, 32, 64 concurrent requests, and the shared-prefix cache hit rate."""
    from benchmarks.server import bench_server, format_rows
    from ponder.config import ModelConfig
    from ponder.engine import model_endpoints

    try:
        model = ModelConfig(endpoints=[endpoint] if endpoint else [])
        with model_endpoints(model) as served:
            rows = bench_server(served.endpoints[0], tuple(concurrency), max_tokens)
    except PonderError as err:
        fail(err)
    print(format_rows(rows))
    peak = max(r.tokens_per_second for r in rows if r.load == "throughput")
    print(f"saturated generated tok/s (max over concurrencies): {peak:.1f}")


def engine(
    num_nodes: Annotated[int, typer.Option(help="Synthetic tree size.")] = 10_000,
) -> None:
    """Search bookkeeping speed with a zero-latency scripted policy: select+backup per second."""
    from benchmarks.engine import select_backup_rate

    rate = select_backup_rate(num_nodes=num_nodes)
    print(f"select+backup on a {num_nodes}-node tree: {rate:,.0f} ops/s ({1e6 / rate:.1f} µs each)")


def throughput(
    config: ConfigArg = None,
    problems: Annotated[int, typer.Option(help="Problems of the preset.")] = 64,
    workload: Annotated[str, typer.Option(
        help="Preset tasks: gsm_symbolic (multi-step chains) or chain_sum (mostly one short step).")] = "gsm_symbolic",
    max_in_flight: MaxInFlight = 256,
    concurrency: Annotated[list[int], typer.Option(
        help="Concurrencies of the saturation load (vLLM-CPU runs at most 128 sequences at once).")] = [128],
    endpoint: Endpoint = None,
    block_size: BlockSize = None,
) -> None:
    """Search throughput vs the server's saturated tok/s, prefix-cache hits, bookkeeping share."""
    from benchmarks.search_runs import bench_endpoint, measure_run, throughput_lines
    from benchmarks.server import bench_server_async, shaped_load_rate
    from benchmarks.suite import throughput_config
    from models.client import VLLMClient, served_model
    from ponder.config import load_run_config
    from verifiers.tasks import load_tasks

    say = stage_printer()
    try:
        cfg = load_run_config(config) if config else throughput_config(problems, workload)
        tasks = load_tasks(cfg.tasks)
        with bench_endpoint(endpoint or next(iter(cfg.model.endpoints), None),
                            server_settings(cfg.model.checkpoint, block_size), say) as (url, desc):
            cfg = for_run(cfg, url, max_in_flight, len(tasks))
            print_header("throughput", desc, [cfg])

            async def go():
                async with VLLMClient(url, await served_model(url)) as client:
                    say(f"saturation load before the run (concurrency {', '.join(map(str, concurrency))})")
                    before = await bench_server_async(client, tuple(concurrency), 128)
                    m = await measure_run(cfg, tasks, client, cfg.search.algorithm, on_progress=say)
                    say("saturation load after the run")
                    after = await bench_server_async(client, tuple(concurrency), 128, seed=1)
                    if m.shape:
                        say("saturation load shaped like the run's requests")
                    shaped = (await shaped_load_rate(client, *m.shape, concurrency=max(concurrency))
                              if m.shape else None)
                    return before, m, after, shaped

            before, m, after, shaped = asyncio.run(go())
    except PonderError as err:
        fail(err)
    print("\n".join(throughput_lines(before, after, m, shaped, concurrency)))


def compare(
    config: Annotated[Optional[list[Path]], typer.Argument(
        help="Two run-config YAMLs: best-of-N, then beam; default: the presets.")] = None,
    problems: Annotated[int, typer.Option(help="Problems of the presets (chain_sum).")] = 32,
    num_samples: Annotated[int, typer.Option(help="N of best-of-N; beam uses B1 x B2 = N.")] = 8,
    beam_width: Annotated[int, typer.Option(help="B1 of the beam preset.")] = 2,
    budget: Annotated[int, typer.Option(help="Per-problem generated-token budget of the presets.")] = 2000,
    max_in_flight: MaxInFlight = 256,
    endpoint: Endpoint = None,
    block_size: BlockSize = None,
) -> None:
    """Step beam vs best-of-N at about equal generated tokens: wall per token, beam / BoN."""
    from benchmarks.search_runs import bench_endpoint, compare_lines, measure_run
    from benchmarks.suite import compare_configs
    from models.client import VLLMClient, served_model
    from ponder.config import load_run_config
    from verifiers.tasks import load_tasks

    try:
        if config:
            if len(config) != 2:
                raise typer.BadParameter("give two configs: best-of-N, then beam")
            bon, beam = (load_run_config(p) for p in config)
            if bon.tasks != beam.tasks:
                raise typer.BadParameter("the two configs must have the same tasks")
        else:
            bon, beam = compare_configs(problems, num_samples, budget, beam_width)
        tasks = load_tasks(bon.tasks)
        say = stage_printer()
        with bench_endpoint(endpoint or next(iter(bon.model.endpoints), None),
                            server_settings(bon.model.checkpoint, block_size), say) as (url, desc):
            bon, beam = (for_run(c, url, max_in_flight, len(tasks)) for c in (bon, beam))
            print_header("compare", desc, [bon, beam])

            async def go():
                async with VLLMClient(url, await served_model(url)) as client:
                    return [await measure_run(c, tasks, client, c.search.algorithm, on_progress=say)
                            for c in (bon, beam)]

            m_bon, m_beam = asyncio.run(go())
    except (PonderError, ValueError) as err:
        fail(err)
    print("\n".join(compare_lines(m_bon, m_beam)))


def flat(
    config: ConfigArg = None,
    num_problems: Annotated[int, typer.Option(help="Problems of the preset (chain_sum).")] = 200,
    num_samples: Annotated[int, typer.Option(help="n of each request (self-consistency's N) in the preset.")] = 8,
    concurrency: Annotated[Optional[int], typer.Option(
        help="Problems at once, both sides; default: the config's max_concurrent_problems.")] = None,
    max_in_flight: MaxInFlight = 256,
    ponder_fields: Annotated[bool, typer.Option(
        help="The plain client also sends the fields only ponder needs (return_token_ids).")] = False,
    repeats: Annotated[int, typer.Option(
        help="ponder runs, each between two plain runs (plain, ponder, plain, ponder, ..., plain).")] = 1,
    endpoint: Endpoint = None,
    block_size: BlockSize = None,
) -> None:
    """ponder's self-consistency vs a plain httpx client sending the same requests: tok/s and their ratio."""
    from benchmarks.flat import flat_lines, flat_requests, measure_flat
    from benchmarks.search_runs import bench_endpoint, override
    from benchmarks.suite import flat_config
    from ponder.config import load_run_config
    from verifiers.tasks import load_tasks

    try:
        cfg = load_run_config(config) if config else flat_config(num_problems, num_samples)
        if concurrency is not None:
            cfg = override(cfg, {"max_concurrent_problems": concurrency})
        tasks = load_tasks(cfg.tasks)
        with bench_endpoint(endpoint or next(iter(cfg.model.endpoints), None),
                            server_settings(cfg.model.checkpoint, block_size)) as (url, desc):
            # The in-flight cap never binds: each problem has one request in flight at most.
            cfg = override(cfg, {"model": {"endpoints": [url],
                                           "max_in_flight": max(max_in_flight, cfg.max_concurrent_problems)}})
            reqs = flat_requests(cfg, tasks)
            print_header("flat", desc, [cfg])
            fm = asyncio.run(measure_flat(cfg, tasks, reqs, url, ponder_fields, repeats))
    except PonderError as err:
        fail(err)
    print("\n".join(flat_lines(cfg, reqs, fm, ponder_fields)))


def parallel(
    mcts_problems: Annotated[int, typer.Option(help="Problems of the MCTS workload (chain_sum; 0: skip it).")] = 32,
    beam_problems: Annotated[int, typer.Option(help="Problems of the step-beam workload (0: skip it).")] = 64,
    workload: Annotated[str, typer.Option(help="Step-beam tasks: chain_sum or gsm_symbolic.")] = "chain_sum",
    bound: Annotated[int, typer.Option(help="max_parallel (MCTS) / max_width (beam) of the adaptive runs.")] = 8,
    concurrency: Annotated[list[int], typer.Option(
        help="Concurrencies of the saturation probe; the target is its saturation point. Up to 128: the searches "
             "put hundreds of sequences in flight (64 beams x 3 x 4), and a probe that stops at 32 under-states "
             "the server's ceiling (the step beam ran at 1.7x a 32-deep probe).")] = [8, 16, 32, 64, 128],
    probe_tokens: Annotated[int, typer.Option(help="Generated tokens per probe request.")] = 64,
    matched: Annotated[bool, typer.Option(
        help="When adaptive spent > 10 % more tokens, run it again with each problem's tokens capped so "
             "that the total matches the fixed run's (accuracy at matched tokens).")] = True,
    target_within: Annotated[float, typer.Option(
        help="target_in_flight = the smallest probed concurrency within this share of the best tok/s (0: the "
             "best's own, filling the server as far as it still gains; 0.1: the knee).")] = 0.0,
    fake: Annotated[bool, typer.Option(
        help="Against a fake replica instead of vLLM (benchmarks.fake_server; as many sequences at once as the "
             "largest --concurrency, 20 tok/s each, the target): the scheduler's fill alone (busy sequence-seconds "
             "/ capacity), in seconds, whatever the machine's load; no probe, no accuracy.")] = False,
    fake_answer_share: Annotated[float, typer.Option(
        help="--fake: share of the fake's steps that are answers (higher: thinner trees).")] = 0.5,
    replay_seconds: Annotated[float, typer.Option(
        help="After each fixed run, send its own recorded requests again with no dependencies between them, "
             "target_in_flight sequences in flight, for this many seconds (after 5 s of warm-up): the server's "
             "ceiling for the search's request mix beside the probe's (0: skip).")] = 30.0,
    max_in_flight: MaxInFlight = 256,
    endpoint: Endpoint = None,
    block_size: BlockSize = None,
) -> None:
    """num_parallel 1 vs adaptive in-tree parallelism (MCTS, step beam): wall, tok/s, share of saturated, accuracy."""
    from benchmarks.parallel import (arm_lines, arms, beam_config, compare_lines, matched_arm, mcts_config,
                                     read_parallel, saturation_point, target_lines)
    from benchmarks.replay import ceiling_lines, recorded_requests, replay_ceiling
    from benchmarks.search_runs import bench_endpoint, machine_note, measure_run, override, timeline_lines
    from benchmarks.server import bench_server_async, format_rows
    from models.client import VLLMClient, served_model
    from verifiers.tasks import load_tasks

    say = stage_printer()
    try:
        workloads = ([mcts_config(mcts_problems)] if mcts_problems else []) + (
            [beam_config(beam_problems, workload)] if beam_problems else [])
        if not workloads:
            raise typer.BadParameter("both workloads skipped: give --mcts-problems or --beam-problems above 0")
        if fake:
            if not 0.0 <= fake_answer_share < 1.0:
                raise typer.BadParameter(f"--fake-answer-share {fake_answer_share}: must be in [0, 1)")
            from benchmarks.parallel import fake_lines

            print_header("parallel --fake", "a fake replica (not vLLM)", workloads)
            for line in asyncio.run(fake_lines(workloads, bound, fake_answer_share, max(concurrency), max_in_flight)):
                print(line, flush=True)
            return
        with bench_endpoint(endpoint, server_settings(None, block_size), say) as (url, desc):
            runs = [[(label, for_run(c, url, max_in_flight, len(load_tasks(c.tasks)))) for label, c in arms(w, bound)]
                    for w in workloads]
            print_header("parallel", desc, [c for pair in runs for _, c in pair])

            async def go():
                async with VLLMClient(url, await served_model(url)) as client:
                    probe = dict(rounds=2, num_shared=2, shared_prefix_tokens=64, shared_concurrency=2)
                    say(f"saturation probe before (concurrency {', '.join(map(str, concurrency))})")
                    before = await bench_server_async(client, tuple(concurrency), probe_tokens, **probe)
                    target, first = saturation_point(before, target_within)
                    say(f"target_in_flight = {target} (the probe's saturation point); saturated {first:.1f} tok/s")
                    results = []
                    ceilings = {}

                    async def measure(label, c):
                        c = override(c, {"model": {"target_in_flight": target}})
                        seen: list = []

                        async def grab(run_dir):
                            seen.extend(read_parallel(run_dir))

                        with recorded_requests() as sent:
                            m = await measure_run(c, load_tasks(c.tasks), client, label, inspect=grab,
                                                  on_progress=say)
                        for line in arm_lines(label, m, seen, first):  # now, against the first probe
                            say(line)
                        if replay_seconds > 0 and label.endswith(" fixed"):
                            say(f"replaying [{label}]'s {len(sent)} requests, {target} sequences in flight")
                            ceiling = await replay_ceiling(client, sent, target, replay_seconds)
                            ceilings[label] = ceiling
                            for line in ceiling_lines(label, ceiling, m, first):
                                say(line)
                        return label, m, seen

                    for pair in runs:
                        measured = [await measure(label, c) for label, c in pair]
                        arm = matched_arm(pair[1][1], measured[0][1], measured[1][1]) if matched else None
                        if arm is not None:  # the adaptive run again, its tokens capped to the fixed run's total
                            label, c, cap = arm
                            say(f"{label}: budget.max_generated_tokens = {cap} per problem (the adaptive run's "
                                "problems cut there sum to the fixed run's tokens)")
                            measured.append(await measure(label, c))
                        elif matched:
                            say("adaptive generated at most 10 % more tokens than the fixed run: no matched run")
                        results.append(measured)
                    say("saturation probe after")
                    after = await bench_server_async(client, tuple(concurrency), probe_tokens, seed=1, **probe)
                    return before, after, target, results, ceilings

            before, after, target, results, ceilings = asyncio.run(go())
    except PonderError as err:
        fail(err)
    peaks = [saturation_point(rows)[1] for rows in (before, after)]
    saturated = sum(peaks) / 2
    print("-- saturation probe before and after (n=1 requests, 32-token random prompts, "
          f"{probe_tokens} generated, ignore_eos)")
    print(format_rows([r for r in before + after if r.load == "throughput"]))
    print(f"saturated generated tok/s: {saturated:.1f} (before {peaks[0]:.1f}, after {peaks[1]:.1f}); "
          f"target_in_flight of the adaptive runs: {target} sequences (the smallest probed concurrency within "
          f"{target_within:.0%} of the first probe's best)")
    if abs(peaks[0] - peaks[1]) / max(peaks) > 0.15:
        print(f"WARNING: the saturated figure moved {abs(peaks[0] - peaks[1]) / max(peaks):.0%} during the bench "
              "(other load on the machine?): shares of it, the target and run-to-run ratios are unreliable")
    for measured in results:
        for label, m, seen in measured:
            print("\n".join(arm_lines(label, m, seen, saturated) + timeline_lines(m, 5.0)))
            if label in ceilings:
                print("\n".join(ceiling_lines(label, ceilings[label], m, saturated)))
            if label.endswith(" matched"):
                print(f"    (budget.max_generated_tokens = {m.cfg.budget.max_generated_tokens} per problem)")
        for _, m, _ in measured[1:]:
            print("\n".join(compare_lines(measured[0][1], m)))
        print("\n".join(target_lines([(label, m) for label, m, _ in measured], saturated)))
    print(f"machine at the end: {machine_note()}")
    print("LLM Reasoners' MCTS: not run here (no installable package); its recorded wall is issue 28's.")


def view(
    out: Annotated[Path, typer.Option(help="Where the synthetic run dir goes (rewritten).")] = Path("runs/bench-view"),
    problems: Annotated[int, typer.Option(help="Problems in the synthetic run.")] = 200,
    nodes: Annotated[int, typer.Option(help="Nodes per tree.")] = 1000,
    repeats: Annotated[int, typer.Option(help="Page loads (a fresh browser each).")] = 5,
) -> None:
    """Open time of `ponder view` on a synthetic big run in headless Chromium (target < 2 s)."""
    from benchmarks.view import bench_view
    from ponder.view.browser import unavailable_reason

    reason = unavailable_reason()
    if reason:
        fail(reason)
    for line in bench_view(out, problems, nodes, repeats):
        print(line, flush=True)
