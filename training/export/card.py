"""The short README.md card written next to each exported dataset."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.export.formats import Rows
from training.export.sources import RunData

DESCRIPTIONS = {
    "prm": "Stepwise supervision (TRL): `prompt`, `completions` (step texts, stripped; the "
           "trainer puts its step separator after each), `labels` (one per step).",
    "sft": "Prompt-completion (TRL): `prompt`, `completion` — correct solutions only.",
    "pairs": "Step-level preference (TRL): `prompt` (question + prefix), `chosen`, `rejected` "
             "(sibling steps), `margin` (value gap; TRL's RewardTrainer uses it in its loss).",
    "value": "Value regression: `prompt`, `completion` (prefix + step), `value` in [0, 1].",
}


@dataclasses.dataclass(frozen=True)
class CardInfo:
    """What a card says beyond the rows: the source and how the dataset was made.

    Attributes:
        fmt: The format name (``prm``, ``sft``, ``pairs``, ``value``).
        source: Where the values came from, e.g. ``labels: math_shepherd`` or ``tree values``.
        options: The export options that shaped this dataset.
        columns: Column name -> feature type, as saved.
        uses_labels: Whether the rows come from label files (their read notes apply).
    """

    fmt: str
    source: str
    options: dict[str, Any]
    columns: dict[str, str]
    uses_labels: bool = False


def length_stats(values: Sequence[int]) -> str:
    """``mean / median / max`` of counts, or ``unknown`` when there are none."""
    if not values:
        return "unknown"
    return f"mean {statistics.fmean(values):.1f}, median {statistics.median(values):g}, max {max(values)}"


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_card(info: CardInfo, rows: Rows, run: RunData) -> str:
    """The card's markdown: source run, counts, label balance, step lengths, notes."""
    config = run.config
    lines = [
        f"# ponder `{info.fmt}` dataset",
        "",
        DESCRIPTIONS.get(info.fmt, ""),
        "",
        "## Source",
        f"- run directory: `{run.path.resolve()}`",
        (f"- run name: {config.get('name', 'n/a')}; algorithm: {run.algorithm or 'n/a'}; "
         f"mode: {config.get('mode', 'n/a')}"),
        f"- built from: {info.source}",
        (f"- problems in the run: {len(run.results)} "
         f"({len(run.finished)} finished, {len(run.errored)} errored and left out)"),
        f"- options: {', '.join(f'{k}={v!r}' for k, v in info.options.items()) or 'none'}",
        "",
        "## Counts",
    ]
    if rows.rows:
        lines.append(f"- rows: {len(rows.rows)}")
    else:
        lines.append("- rows: 0 — this dataset is EMPTY (saved with its columns so loaders still work)")
    lines.append(f"- problems: {rows.num_problems}")
    lines += ["", "## Labels and balance"]
    lines += [f"- {k}: {_fmt(v)}" for k, v in rows.stats.items()] or ["- n/a"]
    lines += [
        "",
        "## Step lengths" if info.fmt != "sft" else "## Solution lengths",
        f"- characters: {length_stats(rows.step_chars)}",
        f"- tokens (as sampled): {length_stats(rows.step_tokens)}",
        "",
        "## Columns",
        *(f"- `{name}`: {kind}" for name, kind in info.columns.items()),
    ]
    notes = list(rows.notes)
    if run.missing_traces:
        notes.append(f"{len(run.missing_traces)} finished problem(s) had no trace file.")
    if info.uses_labels and run.skipped_label_lines:
        notes.append(f"{run.skipped_label_lines} torn last line(s) of label files were skipped.")
    if notes:
        lines += ["", "## Notes", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_card(directory: Path, info: CardInfo, rows: Rows, run: RunData) -> Path:
    """Writes ``README.md`` into ``directory`` and returns its path."""
    path = directory / "README.md"
    path.write_text(render_card(info, rows, run))
    return path
