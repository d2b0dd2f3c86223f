"""`ponder label` (a run in label mode, then its datasets) and `ponder export` (a run's datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ponder.cli.common import console, fail
from ponder.cli.run import load_run, run_with_progress
from search.protocols import PonderError


def label(
    config: Annotated[Path, typer.Argument(help="Run-config YAML with a labels: list (see configs/label.yaml).")],
    run_dir: Annotated[Optional[str], typer.Option(help="Override the run directory.")] = None,
) -> None:
    """Label mode: search each problem, label its tree with the configured generators (gold
    answers reach the labels only here), then write datasets under RUN_DIR/datasets
    (prm / pairs / value once per generator, sft once).

    Resumable like `ponder run`: re-run the same command after a kill.
    """
    from ponder.run import export_labelled

    cfg, tasks = load_run(config, {"mode": "label", **({"run_dir": run_dir} if run_dir else {})})
    run_with_progress(cfg, tasks)
    try:
        written = export_labelled(cfg, tasks)
    except PonderError as err:
        fail(err)
    for path in written:
        console.print(f"dataset: {path}")


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
        fail(err)
    for fmt, path in written.items():
        console.print(f"dataset {fmt}: {path}")
