"""`ponder bench ...`: measurements that print ratios taken in one run (not timed tests).

``server`` and ``engine`` measure the model server and the search core apart; ``throughput``,
``compare`` and ``accuracy`` run real searches on one shared server (see
:mod:`benchmarks.search_runs` for how a run is measured, :mod:`benchmarks.suite` for presets);
``flat`` sets ponder's whole-solution sampling beside a plain client (:mod:`benchmarks.flat`);
``label`` (what Math-Shepherd and OmegaPRM labels cost on the same trees, :mod:`benchmarks.label`),
``treepo`` (TreePO vs independent sampling) and ``prove`` (prover agents, cache sharing, planner)
are registered from :mod:`benchmarks.cli_methods`, ``view`` from :mod:`benchmarks.view`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from search.protocols import PonderError

bench_app = typer.Typer(help="Benchmarks: server ceiling, engine overhead, search throughput, algorithm comparison, "
                        "flat sampling vs a plain client, label generators' cost, TreePO sampling.",
                        no_args_is_help=True)
console = Console()

Endpoint = Annotated[Optional[str], typer.Option(help="Server URL; default: a recorded or new embedded server.")]
BlockSize = Annotated[Optional[int], typer.Option(
    help="vLLM --block-size (prefix-cache granularity, tokens) for a server started here; default ServerSettings.block_size (32).")]
KvCacheGib = Annotated[Optional[int], typer.Option(
    help="KV-cache GiB of a server started here; default ServerSettings' (2 in bf16, 4 in float32). The prefix "
         "cache keeps only what fits: size it for the tokens the problems at once keep live.")]
MaxInFlight = Annotated[int, typer.Option(help="Policy requests in flight at once (model.max_in_flight).")]
ConfigArg = Annotated[Optional[Path], typer.Argument(help="Run-config YAML; default: the bench's preset.")]


def _fail(err: Exception) -> None:
    console.print(f"[red]error:[/] {err}")
    raise typer.Exit(2) from None


@bench_app.command("server")
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
        _fail(err)
    print(format_rows(rows))
    peak = max(r.tokens_per_second for r in rows if r.load == "throughput")
    print(f"saturated generated tok/s (max over concurrencies): {peak:.1f}")


@bench_app.command("engine")
def engine(
    num_nodes: Annotated[int, typer.Option(help="Synthetic tree size.")] = 10_000,
) -> None:
    """Search bookkeeping speed with a zero-latency scripted policy: select+backup per second."""
    from benchmarks.engine import select_backup_rate

    rate = select_backup_rate(num_nodes=num_nodes)
    print(f"select+backup on a {num_nodes}-node tree: {rate:,.0f} ops/s ({1e6 / rate:.1f} µs each)")


def _settings(checkpoint: str | None, block_size: int | None, kv_cache_gib: int | None = None):
    from models.server import ServerSettings

    settings = ServerSettings(checkpoint=Path(checkpoint) if checkpoint else None, kv_cache_gib=kv_cache_gib)
    # The setting itself, not an extra --block-size: vLLM refuses a flag given twice.
    return settings.model_copy(update={"block_size": block_size}) if block_size else settings


def _header(title: str, server_desc: str, cfgs: list) -> None:
    from benchmarks.search_runs import machine_note

    print(f"== ponder bench {title}")
    print(f"machine: {machine_note()}")
    print(f"server:  {server_desc}")
    for cfg in cfgs:
        d = cfg.model_dump(mode="json")
        print(f"config {cfg.name}: " + json.dumps({k: d[k] for k in
              ("tasks", "search", "steps", "budget", "reward", "max_concurrent_problems", "temperature")}))
        print(f"  model.max_in_flight={cfg.model.max_in_flight}")


def _for_run(cfg, endpoint: str, max_in_flight: int, num_problems: int):
    """The config pointed at the bench's server, every problem at once, a high in-flight cap."""
    from benchmarks.search_runs import override

    return override(cfg, {"model": {"endpoints": [endpoint], "max_in_flight": max_in_flight},
                          "max_concurrent_problems": num_problems})


def _timeline_lines(m, every_s: float) -> list[str]:
    from benchmarks.metrics import timeline

    out = [f"  timeline (every {every_s:.0f} s): start s, server gen tok/s, max running, max waiting"]
    out += [f"    {t:6.0f} {rate:8.1f} {run:6.0f} {wait:6.0f}" for t, rate, run, wait in timeline(m.samples, every_s)]
    return out


def _run_lines(m) -> list[str]:
    from benchmarks.metrics import fmt

    s = m.summary
    return [
        f"[{m.label}] problems={s['problems']} accuracy={s['accuracy']:.3f} errors={s['errors']} "
        f"wall={m.wall_seconds:.1f}s",
        f"  policy tokens: generated={s['generated_tokens']} prompt={s['prompt_tokens']} calls={s['calls']}; "
        f"reward-model tokens={s['reward_tokens']}",
        f"  server tokens: generated {m.server_generated:.0f}, prompt {m.server_prompt[0]:.0f} "
        f"(computed, not cached: {m.server_prompt[1]:.0f})",
        f"  server generated tok/s: whole run {m.tok_per_s:.1f}, sustained (10-90% of tokens) "
        f"{fmt(m.sustained_tok_per_s)}, while requests waited at the server {fmt(m.queued_tok_per_s)}",
        f"  prefix-cache hit rate: /metrics {fmt(m.hit_rate_metrics, '.1%')}, "
        f"usage (policy) {fmt(m.hit_rate_usage, '.1%')}; cache emptied before the run: "
        f"{'yes' if m.cache_reset else 'NO (server not in dev mode: earlier runs may inflate hits)'}",
        f"  peak in flight: policy gate {m.peak_in_flight}, server running+waiting {m.peak_server_requests:.0f}",
        f"  bookkeeping share {fmt(m.bookkeeping_share, '.3%')}; client process CPU "
        f"{m.client_cpu_seconds:.1f}s = {fmt(m.client_cpu_seconds / m.wall_seconds if m.wall_seconds else None, '.1%')} of wall",
    ]


@bench_app.command("throughput")
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
    from benchmarks.server import bench_server_async, format_rows, shaped_load_rate
    from models.client import VLLMClient, served_model
    from benchmarks.metrics import fmt, ratio
    from benchmarks.search_runs import bench_endpoint, machine_note, measure_run
    from benchmarks.suite import throughput_config
    from ponder.config import load_run_config
    from verifiers.tasks import load_tasks

    try:
        cfg = load_run_config(config) if config else throughput_config(problems, workload)
        tasks = load_tasks(cfg.tasks)
        with bench_endpoint(endpoint or next(iter(cfg.model.endpoints), None),
                            _settings(cfg.model.checkpoint, block_size)) as (url, desc):
            cfg = _for_run(cfg, url, max_in_flight, len(tasks))
            _header("throughput", desc, [cfg])

            async def go():
                async with VLLMClient(url, await served_model(url)) as client:
                    before = await bench_server_async(client, tuple(concurrency), 128)
                    m = await measure_run(cfg, tasks, client, cfg.search.algorithm)
                    after = await bench_server_async(client, tuple(concurrency), 128, seed=1)
                    shaped = (await shaped_load_rate(client, *m.shape, concurrency=max(concurrency))
                              if m.shape else None)
                    return before, m, after, shaped

            before, m, after, shaped = asyncio.run(go())
    except PonderError as err:
        _fail(err)
    print("-- saturation load before and after the search (benchmarks.server: n=1 requests, 32-token random "
          "prompts, 128 generated tokens, ignore_eos)")
    print(format_rows(before + after))
    peaks = [max(r.tokens_per_second for r in rows if r.load == "throughput") for rows in (before, after)]
    saturated = sum(peaks) / 2
    drift = abs(peaks[0] - peaks[1]) / max(peaks)
    print(f"saturated generated tok/s: {saturated:.1f} (before {peaks[0]:.1f}, after {peaks[1]:.1f})")
    if drift > 0.15:
        print(f"WARNING: the saturated figure moved {drift:.0%} during the bench (other load on the machine?); "
              f"ratios to it are unreliable. Now: {machine_note()}")
    print(f"-- search run: {len(tasks)} problems, all at once")
    print("\n".join(_run_lines(m) + _timeline_lines(m, 5.0)))
    sustained = m.sustained_tok_per_s
    print("-- ratios (targets)")
    print(f"sustained / saturated tok/s: {fmt(ratio(sustained or 0.0, saturated), '.2f')}   (>= 0.85); "
          f"whole run: {fmt(ratio(m.tok_per_s, saturated), '.2f')}; while requests waited: "
          f"{fmt(ratio(m.queued_tok_per_s or 0.0, saturated), '.2f')}")
    if shaped is not None:
        p_tok, c_tok, g_tok = m.shape
        print(f"  the same server under a load of the search's shape ({p_tok}-token prompts, the last {c_tok} "
              f"uncached, {g_tok} generated, c={max(concurrency)}): {shaped:.1f} tok/s; sustained / that: "
              f"{fmt(ratio(sustained or 0.0, shaped), '.2f')} (the scheduler's share of the gap; the rest is "
              f"what this prompt and reply shape costs the server)")
    print(f"prefix-cache hit rate (/metrics): {fmt(m.hit_rate_metrics, '.1%')}   (>= 80%)")
    print(f"bookkeeping share: {fmt(m.bookkeeping_share, '.3%')}   (<= 1%)")
    print(f"peak requests in flight: {m.peak_in_flight}")


@bench_app.command("compare")
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
    from models.client import VLLMClient, served_model
    from benchmarks.metrics import fmt, normalised_wall_ratio
    from benchmarks.search_runs import bench_endpoint, measure_run
    from benchmarks.suite import compare_configs
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
        with bench_endpoint(endpoint or next(iter(bon.model.endpoints), None),
                            _settings(bon.model.checkpoint, block_size)) as (url, desc):
            bon, beam = (_for_run(c, url, max_in_flight, len(tasks)) for c in (bon, beam))
            _header("compare", desc, [bon, beam])

            async def go():
                async with VLLMClient(url, await served_model(url)) as client:
                    return [await measure_run(c, tasks, client, c.search.algorithm) for c in (bon, beam)]

            m_bon, m_beam = asyncio.run(go())
    except (PonderError, ValueError) as err:
        _fail(err)
    for m in (m_bon, m_beam):
        print("\n".join(_run_lines(m)))
    policy = normalised_wall_ratio(m_beam.wall_seconds, m_beam.summary["generated_tokens"],
                                   m_bon.wall_seconds, m_bon.summary["generated_tokens"])
    server_side = normalised_wall_ratio(m_beam.wall_seconds, m_beam.server_generated,
                                        m_bon.wall_seconds, m_bon.server_generated)
    print("-- ratio (target <= 1.3)")
    print(f"policy tokens: beam {m_beam.summary['generated_tokens']} / best-of-N {m_bon.summary['generated_tokens']} "
          f"= {fmt(m_beam.summary['generated_tokens'] / max(m_bon.summary['generated_tokens'], 1), '.2f')}")
    print(f"wall: beam {m_beam.wall_seconds:.1f}s, best-of-N {m_bon.wall_seconds:.1f}s")
    print(f"beam/BoN wall per policy-generated token: {fmt(policy, '.2f')}x   (<= 1.3x); "
          f"per server-generated token (incl. self-eval replies): {fmt(server_side, '.2f')}x")


@bench_app.command("accuracy")
def accuracy(
    problems: Annotated[int, typer.Option(help="Problems (chain_sum, 2-3 one-digit terms).")] = 20,
    budget: Annotated[list[int], typer.Option(help="Per-problem generated-token budgets.")] = [160, 480],
    plot: Annotated[Path, typer.Option(help="Where the PNG goes.")] = Path("runs/bench/accuracy.png"),
    max_in_flight: MaxInFlight = 256,
    endpoint: Endpoint = None,
    block_size: BlockSize = None,
    only: Annotated[list[str] | None, typer.Option(help="Run only these algorithms (e.g. cot, mc_nest_is, mctsr).")] = None,
) -> None:
    """Accuracy of cot, self-consistency, best-of-N, step beam, best-first, MCTS, MC-NEST and MCTSr at
    equal budgets."""
    from models.client import VLLMClient, served_model
    from benchmarks.search_runs import bench_endpoint, measure_run
    from benchmarks.suite import (PILOT_SAMPLES, accuracy_entries, accuracy_plot, accuracy_point,
                                    accuracy_table, accuracy_tasks, baseline_entries)
    from verifiers.tasks import load_tasks

    task_cfg = accuracy_tasks(problems)
    try:
        tasks = load_tasks(task_cfg)
        with bench_endpoint(endpoint, _settings(None, block_size)) as (url, desc):
            _header("accuracy", desc, [])
            print(f"tasks: {json.dumps(task_cfg)}; budgets {budget} generated policy tokens per problem; "
                  f"steps: {json.dumps(baseline_entries(task_cfg)[0].cfg.steps.model_dump())}")
            print("solve mode: no search sees a gold answer; answers are verified after each search. "
                  "Scorers: best_of_n and mcts use the policy's self-evaluation (reward.kind=self_eval, "
                  "tokens in 'rm tok/pb', not counted in the budget); mc_nest_* and mctsr evaluate "
                  "with a follow-up turn of the policy (generated, so counted in the budget and in "
                  "'gen tok/pb'; prompt + generated in 'rm tok/pb'); step_beam and best_first the "
                  "logprob prior; self_consistency a majority vote; cot is greedy.")

            async def go():
                async with VLLMClient(url, await served_model(url)) as client:
                    async def one(entry):
                        print(f"  running {entry.algorithm} @ {entry.budget}: "
                              f"{json.dumps(entry.cfg.search.model_dump(mode='json'))}", flush=True)
                        cfg = _for_run(entry.cfg, url, max_in_flight, len(tasks))
                        return entry, await measure_run(cfg, tasks, client)

                    def wanted(e):
                        return not only or e.algorithm in only

                    sampled = not only or {"self_consistency", "best_of_n"} & set(only)
                    base = baseline_entries(task_cfg)
                    runs = [await one(e) for e in base if wanted(e) or (sampled and e.budget is None
                                                                        and e.algorithm == "self_consistency")]
                    pilot = next((m for e, m in runs if e.algorithm == "self_consistency"), None)
                    per_chain = pilot.summary["generated_tokens"] / max(len(tasks) * PILOT_SAMPLES, 1) if pilot else 1.0
                    if pilot is not None:
                        print(f"  pilot: {per_chain:.1f} generated tokens per sampled chain", flush=True)
                    for b in budget:
                        runs += [await one(e) for e in accuracy_entries(task_cfg, b, per_chain) if wanted(e)]
                    return runs

            runs = asyncio.run(go())
    except PonderError as err:
        _fail(err)
    points = [accuracy_point(e, m.summary) for e, m in runs]
    print(accuracy_table(points))
    title = f"{task_cfg['name']} ({len(tasks)} problems, 2-3 one-digit terms), embedded SmolLM2-135M, solve mode"
    print(f"plot: {accuracy_plot(points, plot, title).resolve()}")


@bench_app.command("flat")
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
                            _settings(cfg.model.checkpoint, block_size)) as (url, desc):
            # The in-flight cap never binds: each problem has one request in flight at most.
            cfg = override(cfg, {"model": {"endpoints": [url],
                                           "max_in_flight": max(max_in_flight, cfg.max_concurrent_problems)}})
            reqs = flat_requests(cfg, tasks)
            _header("flat", desc, [cfg])
            fm = asyncio.run(measure_flat(cfg, tasks, reqs, url, ponder_fields, repeats))
    except PonderError as err:
        _fail(err)
    print("\n".join(flat_lines(cfg, reqs, fm, ponder_fields)))
