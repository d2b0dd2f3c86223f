"""`ponder prove`: theorems (a built-in set, a YAML config, or a Coq file's Admitted lemmas)
proved by best-first prover agents into a run directory, like `ponder run`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ponder.cli.common import ERRORED, console, fail
from search.protocols import PonderError


def prove(
    target: Annotated[Optional[Path], typer.Argument(
        help="A prove config YAML (configs/prove.yaml), or a Coq .v file: its lemmas that end in Admitted. "
        "(or those given with --theorem) are proved in the file's context; proved.v in the run dir holds "
        "the file with the proofs. None: the built-in theorem set.")] = None,
    env: Annotated[Optional[str], typer.Option(help="auto (Coq when installed, else rewrite), coq, or rewrite.")] = None,
    agents: Annotated[Optional[int], typer.Option(help="Prover agents per theorem (default 1).")] = None,
    planner: Annotated[Optional[bool], typer.Option("--planner/--no-planner", help="Plan subgoals first.")] = None,
    share: Annotated[Optional[bool], typer.Option("--share/--no-share",
                                                  help="Agents share one proof cache (default: share).")] = None,
    max_calls: Annotated[Optional[int], typer.Option(help="Tactic-generation requests per theorem (default 16).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most this many theorems.")] = None,
    theorem: Annotated[Optional[list[str]], typer.Option(help="Only these theorems / lemmas (repeatable).")] = None,
    cache: Annotated[Optional[str], typer.Option(help="local or ray.")] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="Server URL; default: a recorded or new embedded server.")] = None,
    run_dir: Annotated[Optional[str], typer.Option(help="Run directory; default runs/prove-ENV, runs/prove-FILE "
                                                        "or the config's.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed (default 0).")] = None,
) -> None:
    """Prove theorems with best-first prover agents (BFS-Prover); resumable like `ponder run`.

    Options override the config's fields. Exit codes as `ponder run`: 1 when theorems errored.
    """
    from ponder.cli.render import summary_table
    from ponder.cli.run import startup_status
    from ponder.prove import load_prove_config, run_prove, summarize_prove

    options = {"env": env, "agents": agents, "planner": planner, "share": share, "max_calls": max_calls,
               "limit": limit, "theorems": theorem, "cache": cache, "endpoint": endpoint, "run_dir": run_dir,
               "seed": seed}
    try:
        cfg = load_prove_config(target, options)
    except PonderError as err:
        fail(err)
    s = cfg.search
    console.print(f"{cfg.name}: env={cfg.resolved_env}, {s.num_agents} agents, planner={s.planner}, "
                  f"share={s.share_cache}, {s.max_calls} calls/theorem -> {cfg.resolved_run_dir}")

    def on_row(row: dict[str, Any]) -> None:
        mark = "[green]✓[/]" if row["correct"] else ("[red]![/]" if row["status"] == "error" else "[red]✗[/]")
        proof = " ".join(f"{t}." for t in row.get("proof") or [])
        console.print(f"{mark} {row['id']}: {row['status']} calls={row['usage']['calls']} "
                      f"tactics={row.get('tactic_calls', 0)} wall={row['usage'].get('wall_seconds', 0):.1f}s {proof}")

    def on_event(event: dict[str, Any]) -> None:
        detail = event.get("cause") or (f"{event['seconds']} s" if "seconds" in event else "")
        console.print(f"[yellow]engine {event['event']}[/] {event.get('endpoint', '')} {detail}")

    try:
        with startup_status() as on_progress:  # server start, weights, warm-up, with elapsed time
            run = asyncio.run(run_prove(cfg, on_row, on_event, on_progress))
    except PonderError as err:
        fail(err, "theorems already proved are kept: re-run the same command to resume")
    if run.skipped:
        console.print(f"resumed: {run.skipped} theorems were already done")
    summary = summarize_prove(run.rows, run.wall_seconds, run.engine_stats)
    console.print(summary_table(summary, f"{cfg.name} (bfs_prover, {run.env})"))
    console.print(f"proved {summary['proved']}/{len(run.rows)}   tactic calls {summary['tactic_calls']}   "
                  f"env {summary['env_seconds']} s   generation {summary['generation_seconds']} s   "
                  f"cache hits {summary['cache_hits']}")
    console.print(f"results: {cfg.resolved_run_dir / 'results.jsonl'}   traces: {cfg.resolved_run_dir / 'traces'}")
    if run.proved_file is not None:
        console.print(f"proofs in place: {run.proved_file}")
    elif not isinstance(cfg.theorems, list):
        console.print("no lemma of the file is proved yet: no proved.v written")
    if summary["errors"]:
        console.print(f"[red]{summary['errors']} theorems errored[/]: re-run the command to retry them")
        raise typer.Exit(ERRORED)
