"""A run directory: resolved config, append-only results, traces, and a lock.

Layout::

    RUN_DIR/
      config.yaml        the resolved run config (written once; a resume must match it)
      results.jsonl      one line per finished problem, appended and flushed as each ends
      traces/ID.json     the full search tree of each problem (versioned trace schema)
      labels/ID.jsonl    label mode: the problem's step labels (search.labels.records.StepLabel)
      events.jsonl       engine events: server outages, restarts, recoveries, stops
      .lock              held while a run uses the directory

A killed run resumes by re-running the same command: problems whose result line exists are
skipped, except ``status: error`` lines (a search that crashed), which are retried; the latest
line of a problem is the one that counts. Labels and the trace are written before the result
line, so a result line always has them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import filelock
import yaml

from search.protocols import PonderError


class RunDirError(PonderError):
    """The run directory cannot be used (locked by another run, or holds another config)."""


def _write_atomic(target: Path, text: str) -> None:
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


SERVING_FIELDS: tuple[str, ...] = (
    "model.endpoints", "model.model", "model.max_in_flight", "model.timeout_s", "model.max_restarts",
    "model.outage_timeout_s", "reward.endpoints", "reward.model",
)
"""Run-config fields a resumed run may change: where and how the models are reached."""


def _differences(old: Any, new: Any, skip: set[str], at: str = "") -> list[str]:
    """Dotted paths where ``old`` and ``new`` differ, except those in ``skip``."""
    if at in skip:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in dict.fromkeys([*old, *new])
                for d in _differences(old.get(k), new.get(k), skip, f"{at}.{k}" if at else str(k))]
    return [] if old == new else [at or "(the whole config)"]


def _safe_name(problem_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", problem_id)[:200]


class RunDir:
    """Owns one run directory for the lifetime of a ``with`` block."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = filelock.FileLock(str(self.path / ".lock"), timeout=0)

    def __enter__(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "traces").mkdir(exist_ok=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise RunDirError(f"{self.path} is in use by another run (lock {self.path / '.lock'})") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    @property
    def results_path(self) -> Path:
        return self.path / "results.jsonl"

    def write_config(self, config: dict[str, Any], serving: tuple[str, ...] = SERVING_FIELDS) -> None:
        """Writes the resolved config, or checks it matches the one already there (resume).

        ``serving``: dotted fields that say where and how fast the model is served, not what
        the run computes (a resumed run may reach its model on another port); they are left
        out of the check, and the file is rewritten with this invocation's values."""
        target = self.path / "config.yaml"
        if target.exists():
            previous = yaml.safe_load(target.read_text())
            changed = _differences(previous, config, set(serving))
            if changed:
                raise RunDirError(
                    f"{self.path} holds a run with a different config ({', '.join(changed[:5])}); "
                    f"use another run_dir or delete {target}"
                )
        target.write_text(yaml.safe_dump(config, sort_keys=False))

    def rows(self) -> dict[str, dict[str, Any]]:
        """The latest result line of each problem, by id. A torn last line (a kill mid-write)
        is dropped."""
        if not self.results_path.exists():
            return {}
        latest: dict[str, dict[str, Any]] = {}
        for line in self.results_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            latest[row["id"]] = row
        return latest

    def finished(self) -> dict[str, dict[str, Any]]:
        """Problems whose search really ended (``error`` lines are retried, not finished)."""
        return {k: r for k, r in self.rows().items() if r.get("status") != "error"}

    def event(self, event: dict[str, Any]) -> None:
        """Appends one engine event to ``events.jsonl`` (flushed)."""
        with (self.path / "events.jsonl").open("a") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()

    def trace_path(self, problem_id: str) -> Path:
        return self.path / "traces" / f"{_safe_name(problem_id)}.json"

    def labels_path(self, problem_id: str) -> Path:
        return self.path / "labels" / f"{_safe_name(problem_id)}.jsonl"

    def record(self, row: dict[str, Any], trace: dict[str, Any] | None,
               labels: list[dict[str, Any]] | None = None) -> None:
        """Writes the labels and the trace (each atomically), then appends and flushes the
        result line."""
        if labels is not None:
            self.labels_path(row["id"]).parent.mkdir(exist_ok=True)
            _write_atomic(self.labels_path(row["id"]), "".join(json.dumps(x) + "\n" for x in labels))
        if trace is not None:
            _write_atomic(self.trace_path(row["id"]), json.dumps(trace))
        self._repair_tail()
        with self.results_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _repair_tail(self) -> None:
        """Terminates a torn last line left by a killed writer so the next row starts clean."""
        p = self.results_path
        if not p.exists() or p.stat().st_size == 0:
            return
        with p.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
