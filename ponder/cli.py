"""The `ponder` command line: solve, run, label, export, serve, model, bench."""

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

from ponder.bench import bench_app  # noqa: E402
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
    kv_cache_gib: Annotated[float, typer.Option(help="KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE).")] = 2.0,
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
    from ponder.views import tree_view, usage_table
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
    from ponder.views import summary_table

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


def _report_unfinished(run_dir: Path, total: int) -> None:
    from ponder.rundir import RunDir

    finished = len(RunDir(run_dir).finished())
    console.print(f"{finished}/{total} problems finished in {run_dir}; the other {total - finished} "
                  "are unfinished: re-run the same command to resume them")


if __name__ == "__main__":
    app()
