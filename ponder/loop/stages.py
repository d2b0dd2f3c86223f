"""Stage bookkeeping of `ponder loop`: each stage of each round runs once, leaves a done marker.

Layout::

    LOOP_DIR/round-<r>/<stage>/        the stage's outputs (run dirs, datasets, checkpoints)
    LOOP_DIR/round-<r>/<stage>/DONE    JSON: stage, round, wall_seconds, generated_tokens,
                                       calls, outputs (written atomically, last)

A stage whose marker exists is never run again; a killed stage has no marker and runs again,
resuming from what it left (a run dir skips finished problems, a trainer resumes from its
checkpoints), so nothing that finished is recomputed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

DONE = "DONE"


@dataclasses.dataclass(frozen=True)
class StageResult:
    """What a stage reports: its outputs (paths, counts) and the compute it spent."""

    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    generated_tokens: int = 0
    calls: int = 0


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a round: ``run(directory)`` does the work in ``directory``."""

    name: str
    run: Callable[[Path], Awaitable[StageResult]]


def stage_dir(loop_dir: Path, round_index: int, stage: str) -> Path:
    return Path(loop_dir) / f"round-{round_index}" / stage


def done_marker(loop_dir: Path, round_index: int, stage: str) -> dict[str, Any] | None:
    """The stage's done marker, or None when it has not finished."""
    path = stage_dir(loop_dir, round_index, stage) / DONE
    if not path.exists():
        return None
    return json.loads(path.read_text())


async def run_stage(loop_dir: Path, round_index: int, stage: Stage) -> dict[str, Any]:
    """Runs ``stage`` unless its marker exists; returns the marker (``skipped`` set when it
    was already done)."""
    found = done_marker(loop_dir, round_index, stage.name)
    if found is not None:
        return {**found, "skipped": True}
    directory = stage_dir(loop_dir, round_index, stage.name)
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = await stage.run(directory)
    marker = {"stage": stage.name, "round": round_index, "wall_seconds": round(time.perf_counter() - start, 3),
              "generated_tokens": result.generated_tokens, "calls": result.calls, "outputs": result.outputs,
              "finished_at": time.time()}
    tmp = directory / f".{DONE}.tmp"
    tmp.write_text(json.dumps(marker, indent=1, default=str))
    os.replace(tmp, directory / DONE)
    return {**marker, "skipped": False}


async def run_rounds(
    loop_dir: Path,
    rounds: int,
    stages_of: Callable[[int], Sequence[Stage]],
    after_round: Callable[[int], None] | None = None,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Rounds 0..``rounds``: each round's stages in order, then ``after_round(r)`` (the report).

    Returns:
        Every stage's marker, in order (``skipped`` for the ones done by an earlier run).
    """
    markers = []
    for r in range(rounds + 1):
        for stage in stages_of(r):
            marker = await run_stage(loop_dir, r, stage)
            markers.append(marker)
            if on_stage is not None:
                on_stage(marker)
        if after_round is not None:
            after_round(r)
    return markers
