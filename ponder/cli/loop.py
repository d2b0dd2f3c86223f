"""`ponder loop`: rounds of label -> train -> serve -> evaluate, resumable stage by stage."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ponder.cli.common import console, fail
from search.protocols import PonderError


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
        from ponder.requirements import check_checkpoints

        check_checkpoints({"base_policy": cfg.base_policy, "base_prm": cfg.base_prm})
    except PonderError as err:
        fail(err)

    def on_stage(marker: dict) -> None:
        how = "done before" if marker["skipped"] else f"{marker['wall_seconds']:.0f} s"
        console.print(f"round {marker['round']} {marker['stage']}: {how}, {marker['generated_tokens']} tokens, "
                      f"{marker['calls']} calls")

    started = time.perf_counter()

    def on_progress(message: str) -> None:  # a stage's servers, warm-ups and searches starting
        console.print(f"[dim]{time.perf_counter() - started:7.1f} s[/] {escape(message)}")

    try:
        asyncio.run(run_loop(cfg, on_stage, on_progress=on_progress))
    except PonderError as err:
        fail(err, "finished stages are kept: re-run the same command to continue")
    console.print(f"report: {cfg.resolved_loop_dir / 'report.md'}")
