"""`ponder bench accuracy | treepo | label | prove | prm | guided`: methods side by side at equal budgets.

``accuracy`` sets the search algorithms beside each other (:mod:`benchmarks.suite`);
``treepo`` TreePO's segment trees beside independent sampling (:mod:`benchmarks.treepo`);
``label`` Math-Shepherd beside OmegaPRM on the same trees (:mod:`benchmarks.label`);
``prove`` prover agents, cache sharing and the planner (:mod:`benchmarks.prove`);
``prm`` step judges on solutions with planted first errors (:mod:`benchmarks.prm`);
``guided`` searches guided by a step judge beside self-consistency at equal generated tokens
(:mod:`benchmarks.guided`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from benchmarks.cli.options import (BlockSize, ConfigArg, Endpoint, KvCacheGib, MaxInFlight, for_run, print_header,
                                    server_settings)
from ponder.cli.common import fail
from search.protocols import PonderError


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
        with bench_endpoint(endpoint, server_settings(None, block_size)) as (url, desc):
            print_header("accuracy", desc, [])
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
                        cfg = for_run(entry.cfg, url, max_in_flight, len(tasks))
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
        fail(err)
    points = [accuracy_point(e, m.summary) for e, m in runs]
    print(accuracy_table(points))
    title = f"{task_cfg['name']} ({len(tasks)} problems, 2-3 one-digit terms), embedded SmolLM2-135M, solve mode"
    print(f"plot: {accuracy_plot(points, plot, title).resolve()}")


def treepo(
    num_problems: Annotated[int, typer.Option(help="Problems of the workload.")] = 100,
    workload: Annotated[str, typer.Option(help="basic_arithmetic, gsm_symbolic or chain_sum (2-3 terms of 1-2 digits).")] = "basic_arithmetic",
    width: Annotated[list[int], typer.Option(help="Trajectories per prompt W (one pair of runs each).")] = [8, 16],
    segment_tokens: Annotated[int, typer.Option(help="TreePO segment length L (tokens); both sides' step format.")] = 32,
    max_depth: Annotated[int, typer.Option(help="Segments per trajectory at most (both sides: L x this tokens).")] = 8,
    concurrency: Annotated[int, typer.Option(help="Problems at once (max_concurrent_problems), both sides.")] = 16,
    search: Annotated[Optional[str], typer.Option(help="Extra TreePO settings as JSON, e.g. '{\"divergence\": 4}'.")] = None,
    align: Annotated[bool, typer.Option(help="TreePO segments aligned on the server's KV blocks (align_block = "
                                        "--block-size, or the machine's: 16 on a GPU, 32 on a CPU).")] = True,
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

        blocks = (block_size or ServerSettings().resolved_block_size()) if align else None
        entries = treepo_entries(num_problems, width, segment_tokens, max_depth, concurrency, extra, workload, blocks)
        tasks = load_tasks(entries[0].cfg.tasks)
        with bench_endpoint(endpoint, server_settings(None, block_size, kv_cache_gib)) as (url, desc):
            entries = [dataclasses.replace(e, cfg=override(e.cfg, {"model": {"endpoints": [url],
                       "max_in_flight": max_in_flight}})) for e in entries]
            print_header("treepo", desc, [e.cfg for e in entries])
            points = asyncio.run(measure_treepo(entries, tasks, url))
    except (PonderError, ValueError) as err:
        fail(err)
    print("\n".join(treepo_lines(points)))
    path = out or Path("runs/bench-treepo") / time.strftime("treepo-%Y%m%d-%H%M%S.json", time.gmtime())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(treepo_json(points) + "\n")
    print(f"runs: {path.resolve()}")


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
        fail(err)
    print(format_table(rows))


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
                            server_settings(cfg.model.checkpoint, block_size)) as (url, desc):
            cfg = override(cfg, {"model": {"endpoints": [url], "max_in_flight": max_in_flight},
                                 "max_concurrent_problems": settings.concurrency})
            print_header("label", desc, [cfg])
            machine = machine_note()
            run, saturated = asyncio.run(run_label_bench(cfg, tasks, settings, url, saturation_concurrency))
    except (PonderError, ValueError) as err:
        fail(err)
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


def prm(
    judge: Annotated[list[str], typer.Option(
        help="Step judges to compare, each a reward kind (symbolic, self_eval, generative_prm, pooling_prm), "
             "optionally with the symbolic checker over it: self_eval+veto, generative_prm+override; "
             "symbolic+provenance also flags numbers that come from nowhere.")] = ["symbolic"],
    tasks: Annotated[list[str], typer.Option(help="reasoning-gym tasks of the planted solutions.")] = [
        "chain_sum", "basic_arithmetic", "simple_equations", "gsm_symbolic"],
    num_problems: Annotated[int, typer.Option(help="Problems per task (each: one correct, one planted solution).")] = 100,
    seed: Annotated[int, typer.Option(help="reasoning-gym seed and the corruptions' seed.")] = 0,
    split: Annotated[str, typer.Option(help="heldout (never for training; by question hash) or train.")] = "heldout",
    threshold: Annotated[float, typer.Option(help="A step scored below this is judged wrong (first-error accuracy).")] = 0.5,
    checkpoint: Annotated[Optional[str], typer.Option(help="PRM checkpoint for *_prm judges (served here).")] = None,
    prm_endpoint: Annotated[Optional[str], typer.Option(help="PRM server URL for *_prm judges.")] = None,
    concurrency: Annotated[int, typer.Option(help="Solutions scored at once.")] = 16,
    max_in_flight: MaxInFlight = 64,
    endpoint: Endpoint = None,
    out: Annotated[Optional[Path], typer.Option(help="JSON results; default runs/bench-prm/prm-<UTC time>.json.")] = None,
) -> None:
    """Step judges on solutions with planted first errors: step AUROC, first-error accuracy, solution AUROC, ECE."""
    import time

    from benchmarks.prm import JudgeRun, ReplayedScores, bench_judge, kind_lines, planted_set, table_lines
    from benchmarks.search_runs import machine_note
    from ponder.config import ModelConfig, RewardConfig, validated
    from ponder.engine import open_engine
    from verifiers.step_reward import CombinedReward, SymbolicChecker, SymbolicReward

    try:
        reward_cfgs = {}
        for name in judge:
            kind, _, rule = name.partition("+")
            fields: dict = {"kind": kind, "symbolic": rule or "off"}
            if kind == "symbolic":  # symbolic+provenance: numbers must come from the question or earlier steps
                if rule not in ("", "provenance"):
                    raise ValueError(f"judge {name!r}: the symbolic judge takes only +provenance")
                fields = {"kind": kind, "checker": {"provenance": bool(rule)}}
            if kind.endswith("_prm"):
                fields.update(checkpoint=checkpoint, endpoints=[prm_endpoint] if prm_endpoint else [])
            reward_cfgs[name] = validated(RewardConfig, fields)
        if split not in ("heldout", "train"):
            raise ValueError(f"split must be heldout or train, got {split!r}")
        solutions = planted_set(tasks, num_problems, seed, split)
        print(f"machine: {machine_note()}")
        print(f"planted set: {len(solutions)} solutions ({', '.join(tasks)}; {num_problems} problems each, seed {seed}, "
              f"split {split}); threshold {threshold}")

        async def go():
            runs = []
            judged: dict[str, JudgeRun] = {}  # a served judge runs once; its +veto / +override replay its scores
            for name, cfg in reward_cfgs.items():
                print(f"  judging with {name} ...", flush=True)
                if cfg.kind == "symbolic":
                    runs.append(await bench_judge(name, SymbolicReward(SymbolicChecker(cfg.checker)), solutions,
                                                  threshold=threshold, concurrency=concurrency))
                    continue
                if cfg.kind not in judged:
                    model = ModelConfig(endpoints=[endpoint] if endpoint else [], max_in_flight=max_in_flight)
                    async with open_engine(model, cfg.model_copy(update={"symbolic": "off"})) as engine:
                        judged[cfg.kind] = await bench_judge(cfg.kind, engine.reward_model, solutions,
                                                             threshold=threshold, concurrency=concurrency)
                base = judged[cfg.kind]
                if cfg.symbolic == "off":
                    runs.append(base)
                    continue
                combined = CombinedReward(ReplayedScores(solutions, base.scores), SymbolicChecker(cfg.checker),
                                          cfg.symbolic)
                run = await bench_judge(name, combined, solutions, threshold=threshold, concurrency=concurrency)
                run.wall_seconds += base.wall_seconds
                runs.append(run)
            return runs

        runs = asyncio.run(go())
    except (PonderError, ValueError) as err:
        fail(err)
    print("\n".join(table_lines(runs)))
    print()
    print("first-error accuracy per corruption kind (all tasks):")
    print("\n".join(kind_lines(runs)))
    path = out or Path("runs/bench-prm") / time.strftime("prm-%Y%m%d-%H%M%S.json", time.gmtime())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine_note(), "tasks": tasks, "num_problems": num_problems, "seed": seed,
                                "split": split, "threshold": threshold,
                                "runs": [dataclasses.asdict(r) for r in runs]}, indent=2, default=str) + "\n")
    print(f"results: {path.resolve()}")


def guided(
    config: ConfigArg = None,
    arm: Annotated[list[str], typer.Option(
        help="Arms, each sc:N (self-consistency), bon:N (N chains, judge-weighted vote), vote:N (the judge's vote "
             "over sc:N's own chains: runs nothing), beam:B1xB2 (step beam guided by the config's reward judge) or "
             "vote:ARM (the judge's vote over that arm's finished chains, e.g. vote:beam:2x4: runs nothing).")
    ] = ["sc:8", "vote:8", "beam:2x4", "vote:beam:2x4"],
    num_problems: Annotated[int, typer.Option(help="Held-out problems of the config's tasks (the first N).")] = 200,
    split: Annotated[str, typer.Option(
        help="heldout (the reported runs) or tune (the config's other problems: choose a setting there first, "
             "with its own --out).")] = "heldout",
    limit: Annotated[Optional[int], typer.Option(
        help="Run only the first K of them this time (a piece); the table covers what every arm finished.")] = None,
    report_only: Annotated[bool, typer.Option(help="Run nothing: the table from the arms' directories.")] = False,
    table_arm: Annotated[Optional[list[str]], typer.Option(
        help="Arms in the table (default: the --arm list); e.g. run one arm, report all.")] = None,
    out: Annotated[Path, typer.Option(help="Parent of the arms' run directories (resumable).")] = Path(
        "runs/bench-guided"),
    max_in_flight: MaxInFlight = 64,
    endpoint: Endpoint = None,
    kv_cache_gib: KvCacheGib = None,
) -> None:
    """Step-judge-guided search (step beam, best-of-N vote) vs self-consistency at equal generated tokens, on
    held-out problems: accuracy ± SE, paired differences, pass@N, tokens, calls, wall."""
    import time

    from benchmarks.guided import (arm_config, heldout_tasks, parse_arm, read_arm, read_vote_arm, record_wall,
                                   table_lines)
    from benchmarks.search_runs import bench_endpoint, machine_note
    from ponder.config import load_run_config
    from ponder.interrupts import stop_on_signals
    from ponder.run import run_config
    from ponder.rundir import RunDir
    from search.protocols import Interrupted
    from verifiers.step_reward import SymbolicChecker

    try:
        path = config or Path(__file__).resolve().parents[2] / "configs" / "guided_chain_sum.yaml"
        base = load_run_config(path)
        arms = [parse_arm(a) for a in arm]
        shown = [parse_arm(a) for a in table_arm] if table_arm else arms
        if any(a.source for a in shown) and (base.reward is None or base.reward.kind != "symbolic"):
            raise ValueError("vote:N arms re-score chains with the symbolic checker: the config's reward must be "
                             "{kind: symbolic}")
        tasks = heldout_tasks(base, num_problems, split)
        piece = tasks.without([p.id for p in tasks.problems[limit:]]) if limit is not None else tasks
        print("== ponder bench guided")
        print(f"machine: {machine_note()}")
        print(f"base config: {path}; tasks {json.dumps(base.tasks.model_dump(mode='json'))}; {split} problems "
              f"{len(tasks)} (this run: the first {len(piece)}); steps {json.dumps(base.steps.model_dump())}; "
              f"reward {json.dumps(base.reward.model_dump(mode='json') if base.reward else None)}; "
              f"max_concurrent_problems {base.max_concurrent_problems}; temperature {base.temperature}")
        runnable = [a for a in arms if a.source is None]
        if not report_only and runnable:
            with bench_endpoint(endpoint, server_settings(base.model.checkpoint, None, kv_cache_gib)) as (url, desc):
                print(f"server: {desc}")

                async def go():
                    # SIGTERM (e.g. `timeout`) or SIGINT stop the run cleanly: the problems finished so far
                    # are recorded with their wall time, the server this command started is stopped.
                    async with stop_on_signals():
                        for a in runnable:
                            cfg = arm_config(base, a, out / a.dirname, url, max_in_flight)
                            print(f"  running {a.label}: {json.dumps(cfg.search.model_dump(mode='json'))}",
                                  flush=True)
                            done = len(RunDir(cfg.resolved_run_dir).finished()) if cfg.resolved_run_dir.exists() else 0
                            started = time.perf_counter()
                            try:
                                outcome = await run_config(cfg, tasks=piece, warm_up_server=False)
                            except Interrupted:
                                ran = len(RunDir(cfg.resolved_run_dir).finished()) - done
                                record_wall(out / a.dirname, ran, time.perf_counter() - started,
                                            machine_note() + "; interrupted")
                                print(f"  {a.label}: interrupted after {ran} problems", flush=True)
                                raise
                            ran = len(piece) - outcome.skipped
                            if ran:
                                record_wall(out / a.dirname, ran, outcome.wall_seconds, machine_note())
                            print(f"  {a.label}: {ran} problems in {outcome.wall_seconds:.1f} s (search) / "
                                  f"{time.perf_counter() - started:.1f} s (call); {outcome.skipped} already done",
                                  flush=True)

                asyncio.run(go())

        async def read():
            checker = SymbolicChecker(base.reward.checker) if base.reward else None
            return [await (read_vote_arm(out / parse_arm(a.source).dirname, a, tasks, checker) if a.source
                           else read_arm(out / a.dirname, a, tasks)) for a in shown]

        results = asyncio.run(read())
    except (PonderError, ValueError) as err:
        fail(err)
    lines = table_lines(results)
    print("\n".join(lines))
    table = out / "table.md"
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(lines) + "\n")
    print(f"table: {table.resolve()}")
