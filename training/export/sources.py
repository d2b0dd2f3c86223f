"""Reading a finished run directory: its config, result rows, traces and label files.

Training reads only files, never live search objects. The layout is the one
``ponder.rundir`` writes (re-read here with no import of ``ponder``)::

    RUN_DIR/
      config.yaml          the resolved run config
      results.jsonl        one line per finished problem; the latest line of an id counts
      traces/*.json        one ``SearchTrace`` per problem
      labels/*.jsonl       one ``StepLabel`` JSON per line, one file per problem (label runs)

A problem counts as *finished* when its latest result line exists and its status is not
``"error"`` (an errored search is retried by the next run, so its trace or labels, if any
are left over, are stale). Only finished problems' traces and labels are read.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pydantic
import yaml

from search.labels.records import StepLabel
from search.protocols import PonderError
from search.trace import SearchTrace


class RunDataError(PonderError):
    """A run directory (or one of its files) cannot be read; the message names the path."""


@dataclasses.dataclass
class RunData:
    """What a finished run left on disk.

    Attributes:
        path: The run directory.
        config: The resolved run config (``config.yaml``) as a plain dict.
        results: The latest result row of every problem, by id (errored rows included).
        traces: The search trace of each finished problem, by problem id.
        labels: Step labels of finished problems, in file order (files sorted by name).
        missing_traces: Finished problems without a trace file (their rows are kept).
        skipped_label_lines: Torn last lines of label files that were skipped.
    """

    path: Path
    config: dict[str, Any]
    results: dict[str, dict[str, Any]]
    traces: dict[str, SearchTrace]
    labels: list[StepLabel]
    missing_traces: list[str] = dataclasses.field(default_factory=list)
    skipped_label_lines: int = 0

    @property
    def finished(self) -> list[str]:
        """Ids of problems whose latest result row is not an error, sorted."""
        return sorted(k for k, r in self.results.items() if r.get("status") != "error")

    @property
    def errored(self) -> list[str]:
        """Ids of problems whose latest result row is an error, sorted."""
        return sorted(k for k, r in self.results.items() if r.get("status") == "error")

    @property
    def algorithm(self) -> str | None:
        """The search algorithm named in the config, if any."""
        search = self.config.get("search")
        return search.get("algorithm") if isinstance(search, dict) else None


def read_run(run_dir: str | Path) -> RunData:
    """Reads a run directory's config, latest result rows, traces and label files.

    Args:
        run_dir: A directory written by ``ponder run`` / ``ponder label``.

    Returns:
        The run's data; traces and labels only of finished (non-error) problems.

    Raises:
        RunDataError: The directory or its ``config.yaml`` is missing or unreadable, a
            trace does not match the trace schema, or a label line other than the last
            one of its file is not a valid ``StepLabel``.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDataError(f"{path}: not a run directory (no such directory)")
    config = _read_config(path / "config.yaml")
    results = _read_results(path / "results.jsonl")
    finished = {k for k, r in results.items() if r.get("status") != "error"}
    traces = _read_traces(path / "traces", finished)
    labels, skipped = _read_labels(path / "labels", finished)
    missing = sorted(finished - set(traces))
    return RunData(path=path, config=config, results=results, traces=traces, labels=labels,
                   missing_traces=missing, skipped_label_lines=skipped)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunDataError(f"{path}: not found; {path.parent} is not a run directory")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise RunDataError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise RunDataError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def _read_results(path: Path) -> dict[str, dict[str, Any]]:
    """The latest row per id; undecodable lines (a torn write) are skipped, as ``RunDir`` does."""
    if not path.is_file():
        return {}
    latest: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("id"), str):
            latest[row["id"]] = row
    return latest


def _read_traces(folder: Path, finished: set[str]) -> dict[str, SearchTrace]:
    traces: dict[str, SearchTrace] = {}
    if not folder.is_dir():
        return traces
    for file in sorted(folder.glob("*.json")):
        try:
            trace = SearchTrace.model_validate_json(file.read_text())
        except (pydantic.ValidationError, UnicodeDecodeError) as err:
            raise RunDataError(f"{file}: not a valid search trace: {_short(err)}") from None
        if trace.problem_id in finished:
            traces[trace.problem_id] = trace
    return traces


def _read_labels(folder: Path, finished: set[str]) -> tuple[list[StepLabel], int]:
    labels: list[StepLabel] = []
    skipped = 0
    if not folder.is_dir():
        return labels, skipped
    for file in sorted(folder.glob("*.jsonl")):
        lines = file.read_text().splitlines()
        numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
        for i, (n, line) in enumerate(numbered):
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                if i == len(numbered) - 1:  # a torn last line: the writer was killed
                    skipped += 1
                    continue
                raise RunDataError(f"{file}:{n}: not JSON: {err}") from None
            try:
                label = StepLabel.model_validate(raw)
            except pydantic.ValidationError as err:
                raise RunDataError(f"{file}:{n}: not a valid step label: {_short(err)}") from None
            if label.problem_id in finished:
                labels.append(label)
    return labels, skipped


def _short(err: Exception) -> str:
    if isinstance(err, pydantic.ValidationError):
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        return f"{where}: {first['msg']} ({err.error_count()} error(s))"
    return str(err)
