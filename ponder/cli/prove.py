"""`ponder prove`: a theorem set proved by best-first prover agents into a run directory."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ponder.cli.common import console


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
