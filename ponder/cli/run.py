"""`ponder solve` (one question) and `ponder run` (a task set into a run directory)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ponder.cli.common import ERRORED, console, fail
from search.protocols import PonderError


def solve(
    question: Annotated[str, typer.Argument(help="The problem to solve.")],
    config: Annotated[Optional[Path], typer.Option(help="A run-config YAML whose search/model/budget to use.")] = None,
    gold: Annotated[Optional[str], typer.Option(help="Gold answer, checked only after the search.")] = None,
    depth: Annotated[int, typer.Option(help="Tree view depth.")] = 6,
) -> None:
    """Solve one question with search: the answer, a compact tree, usage."""
    from ponder.cli.render import tree_view, usage_table
    from ponder.config import RunConfig, load_run_config
    from ponder.engine import open_engine
    from ponder.run import make_context
    from ponder.interrupts import stop_on_signals
    from search.algorithms import run_search
    from search.protocols import Affinity, Problem, problem_affinity
    from verifiers.math import MathVerifier

    try:  # solve never labels, and searches one problem: a label config's generators and drivers are dropped
        cfg = load_run_config(config, {"mode": "solve", "labels": [], "drivers": 1}) if config else RunConfig()
        check_run_checkpoints(cfg)
    except PonderError as err:
        fail(err)
    problem = Problem(id="cli", question=question)

    async def go(on_progress: Callable[[str], None]):
        async with stop_on_signals(), open_engine(cfg.model, cfg.reward, on_progress=on_progress) as engine:
            on_progress(f"searching ({cfg.search.algorithm})")
            ctx = make_context(cfg, engine, problem, None, 0)
            problem_affinity.set(Affinity(problem.id))  # one tree: one replica (tree routing), as in a run
            return await run_search(ctx, cfg.search)

    try:
        with startup_status() as on_progress:
            result = asyncio.run(go(on_progress))
    except PonderError as err:
        fail(err)
    console.print(tree_view(result, max_depth=depth))
    console.print(usage_table(result.usage.to_dict()))
    console.print(f"[bold]answer:[/] {result.answer}   ({cfg.search.algorithm})")
    if gold is not None:
        verifier = MathVerifier()
        verdict = verifier.verify(gold, result.answer or "")
        console.print(f"[bold]verdict:[/] {verdict.status.value} (gold {gold!r})")


def run(
    config: Annotated[Path, typer.Argument(help="Run-config YAML (see configs/).")],
    run_dir: Annotated[Optional[str], typer.Option(help="Override the run directory.")] = None,
) -> None:
    """Search a task set; results.jsonl and traces in the run dir; a summary table at the end.

    Re-running the same command resumes: finished problems are skipped.
    """
    run_with_progress(*load_run(config, {"run_dir": run_dir} if run_dir else {}))


def progress_line(started: float, message: str) -> str:
    """One line of start-up progress: seconds since ``started`` (a ``time.perf_counter()``) and
    what is happening."""
    return f"[dim]{time.perf_counter() - started:6.1f} s[/] {escape(message)}"


@contextlib.contextmanager
def startup_status() -> Iterator[Callable[[str], None]]:
    """A spinner with the current start-up phase (server start, weights, warm-up) and its
    elapsed time; each phase is also printed as a line. Yields the ``on_progress`` callable."""
    started = time.perf_counter()
    with console.status("starting") as status:
        def on_progress(message: str) -> None:
            console.print(progress_line(started, message))
            status.update(f"{escape(message.split(' (')[0])} ...")

        yield on_progress


def check_run_checkpoints(cfg: Any) -> None:
    """The policy's and the PRM's configured checkpoints are checkpoint folders (before any
    server starts: the PRM's would start after the policy's)."""
    from ponder.requirements import check_checkpoints, check_ray, check_serving

    check_checkpoints({"model.checkpoint": cfg.model.checkpoint,
                       "reward.checkpoint": cfg.reward.checkpoint if cfg.reward is not None else None})
    check_serving(cfg.model)
    check_ray(getattr(cfg, "drivers", 1))


def load_run(config: Path, overrides: dict[str, Any]) -> tuple[Any, Any]:
    """The run config (with ``overrides``) and its task set; exits 2 on bad input."""
    from ponder.config import load_run_config
    from search.protocols import ConfigError
    from verifiers.tasks import load_tasks

    try:
        cfg = load_run_config(config, overrides or None)
        if cfg.tasks is None:
            raise ConfigError("tasks", None, "a run needs a task source")
        check_run_checkpoints(cfg)
        return cfg, load_tasks(cfg.tasks)
    except PonderError as err:
        fail(err)


def run_with_progress(cfg: Any, tasks: Any) -> None:
    """Runs a loaded config with a progress bar and prints the summary; exits 1 on errored problems."""
    from ponder.cli.render import summary_table
    from ponder.run import run_config, summarize

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

        started = time.perf_counter()

        def on_progress(message: str) -> None:  # what happens before the first problem: server, warm-up
            progress.console.print(progress_line(started, message))
            progress.update(bar, description=escape(f"{cfg.name}: {message.split(' (')[0]}"))

        try:
            outcome = asyncio.run(run_config(cfg, on_row, tasks, on_event, on_progress))
        except PonderError as err:
            progress.stop()
            _report_unfinished(cfg.resolved_run_dir, len(tasks))
            fail(err)
        progress.update(bar, completed=len(tasks))
    if outcome.skipped:
        console.print(f"resumed: {outcome.skipped} problems were already done")
    if getattr(outcome, "drivers", ()):  # a sharded run (ponder.shards): what each driver searched
        lost = f", {outcome.lost_drivers} lost and replaced" if outcome.lost_drivers else ""
        console.print(f"{len(outcome.drivers)} drivers: " + " + ".join(str(r.problems) for r in outcome.drivers)
                      + f" problems{lost}")
    summary = summarize(outcome.rows, outcome.wall_seconds, outcome.engine_stats)
    console.print(summary_table(summary, f"{cfg.name} ({cfg.search.algorithm})"))
    console.print(f"results: {cfg.resolved_run_dir / 'results.jsonl'}   traces: {cfg.resolved_run_dir / 'traces'}")
    if summary["errors"]:
        console.print(f"[red]{summary['errors']} problems errored[/]: re-run the command to retry them")
        raise typer.Exit(ERRORED)


def _report_unfinished(run_dir: Path, total: int) -> None:
    from ponder.rundir import RunDir

    finished = len(RunDir(run_dir).finished())
    console.print(f"{finished}/{total} problems finished in {run_dir}; the other {total - finished} "
                  "are unfinished: re-run the same command to resume them")
