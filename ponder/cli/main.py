"""The `ponder` command line: solve, run, view, prove, label, export, train, loop, serve, model, bench."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks import bench_app  # noqa: E402
from search.protocols import PonderError  # noqa: E402

app = typer.Typer(help="ponder: tree-search reasoning engine for language models.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(bench_app, name="bench")
console = Console()


def _fail(err: Exception) -> None:
    """Prints the error and exits: 130 / 143 for SIGINT / SIGTERM, 3 for an engine fault, else 2."""
    from ponder.interrupts import EXIT_CODES
    from search.protocols import EngineFault, Interrupted

    if isinstance(err, Interrupted):
        console.print(f"[bold yellow]stopped:[/] {err}")
        raise typer.Exit(EXIT_CODES.get(err.signal_name, 130))
    console.print(f"[bold red]error:[/] {err}")
    raise typer.Exit(3 if isinstance(err, EngineFault) else 2)


@app.command()
def model() -> None:
    """Prepare the embedded model (convert the packaged GGUF once) and print its path."""
    from models.embedded import embedded_checkpoint

    try:
        start = time.perf_counter()
        path = embedded_checkpoint()
    except PonderError as err:
        _fail(err)
    console.print(f"embedded checkpoint: {path} ({time.perf_counter() - start:.1f} s)")


@app.command()
def serve(
    checkpoint: Annotated[Optional[Path], typer.Argument(help="HF checkpoint dir; default: the embedded model.")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the recorded server.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Show the recorded server.")] = False,
    port: Annotated[Optional[int], typer.Option(help="Port; default a free one.")] = None,
    kv_cache_gib: Annotated[Optional[int], typer.Option(
        help="KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE); default 2 (bf16) or 4 (float32).")] = None,
    omp_threads_bind: Annotated[str, typer.Option(help="Cores for the model's threads ('auto' = all).")] = "auto",
    enforce_eager: Annotated[bool, typer.Option(help="Skip compilation: ~25 s start instead of ~90 s.")] = True,
    max_model_len: Annotated[int, typer.Option(help="Context length in tokens.")] = 2048,
) -> None:
    """Start a local vLLM server (recorded, reused by later commands), or --status / --stop it."""
    from models.server import ServerSettings, server_status, start_server, stop_server

    try:
        if stop:
            console.print("stopped" if stop_server() else "no recorded server")
            return
        if status:
            st = server_status()
            if st is None:
                console.print("no recorded server")
                raise typer.Exit(1)
            r = st.record
            console.print(f"pid {r.pid}  {r.endpoint}  model {r.model}  healthy={st.healthy}  since {r.started_at}\n"
                          f"checkpoint {r.checkpoint}\nlog {r.log_path}")
            return
        settings = ServerSettings(checkpoint=checkpoint, port=port, kv_cache_gib=kv_cache_gib,
                                  omp_threads_bind=omp_threads_bind, enforce_eager=enforce_eager,
                                  max_model_len=max_model_len)
        rec = start_server(settings)
    except PonderError as err:
        _fail(err)
    console.print(f"serving {rec.model} on {rec.endpoint} (pid {rec.pid}, ready in {rec.startup_seconds:.1f} s)")


@app.command()
def solve(
    question: Annotated[str, typer.Argument(help="The problem to solve.")],
    config: Annotated[Optional[Path], typer.Option(help="A run-config YAML whose search/model/budget to use.")] = None,
    gold: Annotated[Optional[str], typer.Option(help="Gold answer, checked only after the search.")] = None,
    depth: Annotated[int, typer.Option(help="Tree view depth.")] = 6,
) -> None:
    """Solve one question with search: the answer, a compact tree, usage."""
    from ponder.config import RunConfig, load_run_config
    from ponder.engine import make_context, open_engine
    from ponder.interrupts import stop_on_signals
    from ponder.cli.render import tree_view, usage_table
    from search.algorithms import run_search
    from search.protocols import Problem
    from verifiers.math import MathVerifier

    try:
        cfg = load_run_config(config, {"mode": "solve"}) if config else RunConfig()
    except PonderError as err:
        _fail(err)
    problem = Problem(id="cli", question=question)

    async def go():
        async with stop_on_signals(), open_engine(cfg.model, cfg.reward) as engine:
            ctx = make_context(cfg, engine, problem, None, 0)
            return await run_search(ctx, cfg.search)

    try:
        result = asyncio.run(go())
    except PonderError as err:
        _fail(err)
    console.print(tree_view(result, max_depth=depth))
    console.print(usage_table(result.usage.to_dict()))
    console.print(f"[bold]answer:[/] {result.answer}   ({cfg.search.algorithm})")
    if gold is not None:
        verifier = MathVerifier()
        verdict = verifier.verify(gold, result.answer or "")
        console.print(f"[bold]verdict:[/] {verdict.status.value} (gold {gold!r})")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Run-config YAML (see configs/).")],
    run_dir: Annotated[Optional[str], typer.Option(help="Override the run directory.")] = None,
) -> None:
    """Search a task set; results.jsonl and traces in the run dir; a summary table at the end.

    Re-running the same command resumes: finished problems are skipped.
    """
    _execute(*_load(config, {"run_dir": run_dir} if run_dir else {}))


def _load(config: Path, overrides: dict) -> tuple:
    from ponder.config import load_run_config
    from search.protocols import ConfigError
    from verifiers.tasks import load_tasks

    try:
        cfg = load_run_config(config, overrides or None)
        if cfg.tasks is None:
            raise ConfigError("tasks", None, "a run needs a task source")
        return cfg, load_tasks(cfg.tasks)
    except PonderError as err:
        _fail(err)
        raise


def _execute(cfg, tasks) -> None:
    """Runs a loaded config with a progress bar and prints the summary; exits 1 on errored problems."""
    from ponder.engine import run_config, summarize
    from ponder.cli.render import summary_table

    console.print(f"{cfg.name}: {len(tasks)} problems, {cfg.search.algorithm}, mode={cfg.mode} -> {cfg.resolved_run_dir}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("acc {task.fields[acc]}"), TimeElapsedColumn(), console=console)
    with progress:
        bar = progress.add_task(cfg.name, total=len(tasks), acc="-")
        seen = {"n": 0, "ok": 0}

        def on_row(row: dict) -> None:
            seen["n"] += 1
            seen["ok"] += bool(row["correct"])
            answer = row.get("answer")
            mark = "[green]✓[/]" if row["correct"] else "[red]✗[/]"
            progress.console.print(f"{mark} {row['id']}: answer={answer!r} status={row['status']} "
                                   f"tokens={row['usage']['generated_tokens']} calls={row['usage']['calls']}")
            progress.update(bar, advance=1, acc=f"{seen['ok'] / seen['n']:.2f}")

        def on_event(event: dict) -> None:
            detail = event.get("cause") or (f"{event['seconds']} s" if "seconds" in event else "")
            progress.console.print(f"[yellow]engine {event['event']}[/] {event.get('endpoint', '')} {detail}")

        try:
            outcome = asyncio.run(run_config(cfg, on_row, tasks, on_event))
        except PonderError as err:
            progress.stop()
            _report_unfinished(cfg.resolved_run_dir, len(tasks))
            _fail(err)
        progress.update(bar, completed=len(tasks))
    if outcome.skipped:
        console.print(f"resumed: {outcome.skipped} problems were already done")
    summary = summarize(outcome.rows, outcome.wall_seconds, outcome.engine_stats)
    console.print(summary_table(summary, f"{cfg.name} ({cfg.search.algorithm})"))
    console.print(f"results: {cfg.resolved_run_dir / 'results.jsonl'}   traces: {cfg.resolved_run_dir / 'traces'}")
    if summary["errors"]:
        console.print(f"[red]{summary['errors']} problems errored[/]: re-run the command to retry them")
        raise typer.Exit(1)


@app.command()
def view(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, or a folder of run directories (a benchmark, a loop).")],
    problem_id: Annotated[Optional[str], typer.Argument(help="Open on this problem's tree.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="The HTML file; default RUN_DIR/view.html.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open it in the default browser.")] = False,
    gold: Annotated[bool, typer.Option(help="Show gold answers of finished problems (from the run's task set).")] = True,
) -> None:
    """Write one self-contained HTML file (run report, problem table, search trees) and print its path."""
    from ponder.view import write_view

    try:
        path = write_view(run_dir, out, problem_id, with_gold=gold)
    except PonderError as err:
        _fail(err)
    print(path.resolve())
    if open_:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


@app.command()
def prove(
    env: Annotated[str, typer.Option(help="auto (Coq when installed, else rewrite), coq, or rewrite.")] = "auto",
    agents: Annotated[int, typer.Option(help="Prover agents per theorem.")] = 1,
    planner: Annotated[bool, typer.Option(help="Plan subgoals first.")] = False,
    share: Annotated[bool, typer.Option(help="Agents share one proof cache.")] = True,
    max_calls: Annotated[int, typer.Option(help="Tactic-generation requests per theorem.")] = 16,
    limit: Annotated[Optional[int], typer.Option(help="At most this many theorems.")] = None,
    theorem: Annotated[Optional[list[str]], typer.Option(help="Only these theorems (repeatable).")] = None,
    cache: Annotated[str, typer.Option(help="local or ray.")] = "local",
    endpoint: Annotated[Optional[str], typer.Option(help="Server URL; default: a recorded or new embedded server.")] = None,
    run_dir: Annotated[Optional[str], typer.Option(help="Run directory; default runs/prove-ENV.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Prove a theorem set with best-first prover agents (BFS-Prover); resumable like `ponder run`."""
    from ponder.prove import execute_prove

    raise typer.Exit(execute_prove(console, env=env, agents=agents, planner=planner, share=share,
                                   max_calls=max_calls, limit=limit, theorems=theorem or [], cache=cache,
                                   endpoint=endpoint, run_dir=run_dir, seed=seed))


@app.command()
def label(
    config: Annotated[Path, typer.Argument(help="Run-config YAML with a labels: list (see configs/label.yaml).")],
    run_dir: Annotated[Optional[str], typer.Option(help="Override the run directory.")] = None,
) -> None:
    """Label mode: search each problem, label its tree with the configured generators (gold
    answers reach the labels only here), then write datasets under RUN_DIR/datasets
    (prm / pairs / value once per generator, sft once).

    Resumable like `ponder run`: re-run the same command after a kill.
    """
    from training.export import export_run

    cfg, tasks = _load(config, {"mode": "label", **({"run_dir": run_dir} if run_dir else {})})
    _execute(cfg, tasks)
    labelled = [f for f in cfg.export if f != "sft"]
    written: list[Path] = []
    try:
        for generator in dict.fromkeys(g.generator for g in cfg.label_generators):
            if labelled:  # one dataset per generator: their labels mean different things
                written += export_run(cfg.resolved_run_dir, labelled, generator=generator).values()
        if "sft" in cfg.export:
            written += export_run(cfg.resolved_run_dir, ["sft"], tasks=tasks).values()
    except PonderError as err:
        _fail(err)
    for path in written:
        console.print(f"dataset: {path}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (solve or label).")],
    format: Annotated[list[str], typer.Option("--format", "-f", help="prm, sft, pairs, value (repeatable).")] = [
        "prm", "sft", "pairs", "value"],  # noqa: B006
    out: Annotated[Optional[Path], typer.Option(help="Parent folder of the datasets; default RUN_DIR/datasets.")] = None,
    generator: Annotated[Optional[str], typer.Option(help="Label generator for prm / pairs / value.")] = None,
    soft: Annotated[bool, typer.Option(help="Soft prm labels (floats in [0, 1]).")] = False,
) -> None:
    """Turn a run's traces and label files into TRL-ready datasets (each with a README card)."""
    from training.export import export_run

    try:
        written = export_run(run_dir, format, out, generator, soft)
    except PonderError as err:
        _fail(err)
    for fmt, path in written.items():
        console.print(f"dataset {fmt}: {path}")


@app.command()
def train(
    stage: Annotated[str, typer.Argument(help="prm (generative judge), sft (correct solutions), dpo (step pairs), value (regression head); "
                                            "on-policy: grpo, treepo, rover.")],
    dataset: Annotated[Path, typer.Argument(help="A dataset folder written by `ponder export` / `ponder label`; for grpo / treepo / "
                                              "rover a YAML of training.rl.RLTrainConfig fields (tasks, n, ...; see configs/rl/small.yaml).")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints/, model/ (the result), metrics.json, done.json.")],
    base: Annotated[Optional[Path], typer.Option(help="HF checkpoint to start from; default: the embedded model.")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Passes over the data.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Optimizer steps (overrides --epochs).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Examples per forward pass.")] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help="Forward passes per optimizer step.")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Longest example in tokens (longer ones are left out).")] = None,
    eval_fraction: Annotated[Optional[float], typer.Option(help="Share of problems held out for evaluation.")] = None,
    save_steps: Annotated[Optional[int], typer.Option(help="Steps between resumable checkpoints and evaluations.")] = None,
    logging_steps: Annotated[Optional[int], typer.Option(help="Steps between logged losses.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of init, data order and eval split.")] = None,
    lora: Annotated[bool, typer.Option(help="Train LoRA adapters (merged into the result).")] = False,
    lora_rank: Annotated[Optional[int], typer.Option(help="LoRA rank.")] = None,
    beta: Annotated[Optional[float], typer.Option(help="dpo: strength of the tie to the reference.")] = None,
    system_prompt: Annotated[Optional[str], typer.Option(help="sft / dpo: system turn of prompts built from plain-text rows.")] = None,
    resume: Annotated[bool, typer.Option(help="Resume from OUT's last checkpoint; --no-resume starts afresh.")] = True,
    rounds: Annotated[Optional[int], typer.Option(help="grpo / treepo / rover: sample -> update rounds.")] = None,
) -> None:
    """Train one stage on an exported dataset; the checkpoint lands in OUT/model (servable
    with `ponder serve OUT/model`; a value model needs vLLM's --runner pooling).

    Re-running the same command resumes from the last checkpoint, or says it is done.
    """
    from training.train import make_config, run_stage

    if stage in ("grpo", "treepo", "rover"):
        _train_rl(stage, dataset, out, base, {"learning_rate": lr, "seed": seed, "rounds": rounds,
                                              "system_prompt": system_prompt, "resume": resume})
        return
    given = {"num_epochs": epochs, "max_steps": max_steps, "learning_rate": lr, "batch_size": batch_size,
             "gradient_accumulation_steps": grad_accum, "max_length": max_length, "eval_fraction": eval_fraction,
             "save_steps": save_steps, "logging_steps": logging_steps, "seed": seed, "lora_rank": lora_rank,
             "beta": beta, "system_prompt": system_prompt}
    try:
        if base is None:
            from models.embedded import embedded_checkpoint

            base = embedded_checkpoint()
        config = make_config(stage, dataset=dataset, base=base, out=out, lora=lora, resume=resume,
                             **{k: v for k, v in given.items() if v is not None})
        console.print(f"train {stage}: {config.dataset} on {config.base} -> {config.out}")
        result = run_stage(stage, config)
    except PonderError as err:
        _fail(err)
    except KeyboardInterrupt:
        console.print(f"[bold yellow]stopped:[/] re-run the same command to resume from the last checkpoint in {out}")
        raise typer.Exit(130) from None
    if result.already_done:
        console.print(f"already trained: {result.model_dir} (--no-resume to train again)")
        return
    if result.resumed_from:
        console.print(f"resumed from {result.resumed_from}")
    after = result.metrics.get("eval_after") or {}
    shown = {k: round(v, 4) for k, v in after.items() if isinstance(v, float) and "runtime" not in k and "per_second" not in k}
    console.print(f"model: {result.model_dir}\nmetrics: {out / 'metrics.json'}   eval: {shown or 'none'}")


def _train_rl(recipe: str, config_path: Path, out: Path, base: Optional[Path], given: dict) -> None:
    """`ponder train grpo|treepo|rover RL.yaml --out OUT`: the on-policy trainer (ponder.rl)."""
    from ponder.rl import train_rl_command

    try:
        train_rl_command(console, recipe, config_path, out, base, given)
    except PonderError as err:
        _fail(err)
    except KeyboardInterrupt:
        console.print(f"[bold yellow]stopped:[/] re-run the same command to resume from the last round in {out}")
        raise typer.Exit(130) from None


@app.command()
def loop(
    config: Annotated[Path, typer.Argument(help="Loop-config YAML (see configs/loop*.yaml).")],
    rounds: Annotated[Optional[int], typer.Option(help="Override the number of improvement rounds.")] = None,
) -> None:
    """Self-improvement: round 0 evaluates the base models; each round labels training problems
    with search, trains the PRM and the policy, serves them and evaluates on held-out problems.

    Resumable: re-run the same command after a kill; finished stages are skipped. The report
    (report.md + PNGs) is rewritten in the loop dir after each round.
    """
    from ponder.loop.config import load_loop_config
    from ponder.loop.runner import run_loop

    try:
        cfg = load_loop_config(config, {"rounds": rounds} if rounds is not None else None)
    except PonderError as err:
        _fail(err)

    def on_stage(marker: dict) -> None:
        how = "done before" if marker["skipped"] else f"{marker['wall_seconds']:.0f} s"
        console.print(f"round {marker['round']} {marker['stage']}: {how}, {marker['generated_tokens']} tokens, "
                      f"{marker['calls']} calls")

    try:
        asyncio.run(run_loop(cfg, on_stage))
    except PonderError as err:
        console.print("finished stages are kept: re-run the same command to continue")
        _fail(err)
    console.print(f"report: {cfg.resolved_loop_dir / 'report.md'}")


def _report_unfinished(run_dir: Path, total: int) -> None:
    from ponder.rundir import RunDir

    finished = len(RunDir(run_dir).finished())
    console.print(f"{finished}/{total} problems finished in {run_dir}; the other {total - finished} "
                  "are unfinished: re-run the same command to resume them")


if __name__ == "__main__":
    app()
