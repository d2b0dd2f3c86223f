"""A run directory: resolved config, append-only results, traces, and a lock.

Layout::

    RUN_DIR/
      config.yaml        the resolved run config (written once; a resume must match it)
      results.jsonl      one line per finished problem, appended and flushed as each ends
      traces/ID.json     the full search tree of each problem (versioned trace schema)
      labels/ID.jsonl    label mode: the problem's step labels (search.labels.records.StepLabel)
      events.jsonl       engine events: server outages, restarts, recoveries, stops
      proved.v           ``ponder prove FILE.v``: the file with the proofs found in place
      .lock              held while a run uses the directory

A killed run resumes by re-running the same command: problems whose result line exists are
skipped, except ``status: error`` lines (a search that crashed), which are retried; the latest
line of a problem is the one that counts. Labels and the trace are written before the result
line, so a result line always has them.

:func:`open_run` is how a command uses one (``ponder run``, ``label`` and ``prove``): the lock,
the config check, events, and result lines written on one writer thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import filelock
import yaml

from ponder.interrupts import stop_on_signals
from search.protocols import EngineFault, PonderError

T = TypeVar("T")


class RunDirError(PonderError):
    """The run directory cannot be used (locked by another run, or holds another config)."""


def _write_atomic(target: Path, text: str) -> None:
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


SERVING_FIELDS: tuple[str, ...] = (
    "model.endpoints", "model.model", "model.max_in_flight", "model.target_in_flight", "model.timeout_s",
    "model.max_restarts", "model.outage_timeout_s", "model.replicas", "model.routing", "model.rebind_factor",
    "model.tensor_parallel_size", "model.gpu_memory_utilization", "model.max_num_seqs", "model.kv_cache_gib",
    "model.block_size", "model.cluster", "reward.endpoints", "reward.model", "drivers",
)
"""Run-config fields a resumed run may change: where and how the models are reached."""


def config_changes(saved: dict[str, Any], config: dict[str, Any], skip: tuple[str, ...] = (),
                   resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> list[str]:
    """Dotted fields where a resumed command's ``config`` differs from the ``saved`` one,
    except those in ``skip``. ``resolve`` re-validates the saved mapping under today's schema
    first, so a field added to ponder since the run began counts as its default, not as a
    change (a saved file the schema no longer accepts is compared as written)."""
    if resolve is not None:
        try:
            saved = resolve(saved)
        except PonderError:
            pass
    return _differences(saved, config, set(skip))


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

    def write_config(self, config: dict[str, Any], serving: tuple[str, ...] = SERVING_FIELDS,
                     resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        """Writes the resolved config, or checks it matches the one already there (resume).

        ``serving``: dotted fields that say where and how fast the model is served, not what
        the run computes (a resumed run may reach its model on another port); they are left
        out of the check, and the file is rewritten with this invocation's values.
        ``resolve``: see :func:`config_changes`."""
        target = self.path / "config.yaml"
        if target.exists():
            previous = yaml.safe_load(target.read_text())
            changed = config_changes(previous, config, serving, resolve)
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


class Recording:
    """One invocation's use of a run directory (see :func:`open_run`).

    Attributes:
        run_dir: The locked directory.
        done: Result lines of the problems already finished when the run opened (skipped).
        stats_fn: The engine's outage / restart counts, for the ``stopped`` event (set once
            the engine is open).
    """

    def __init__(self, run_dir: RunDir, writer: ThreadPoolExecutor,
                 on_event: Callable[[dict[str, Any]], None] | None) -> None:
        self.run_dir, self._writer, self._on_event = run_dir, writer, on_event
        self.done = run_dir.finished()
        self.stats_fn: Callable[[], dict[str, int]] = dict

    def event(self, event: dict[str, Any]) -> None:
        """Logs an engine event to ``events.jsonl`` and passes it on."""
        self.run_dir.event(event)
        if self._on_event is not None:
            self._on_event(event)

    async def record(self, row: dict[str, Any], trace_fn: Callable[[], dict[str, Any] | None] | None = None,
                     labels_fn: Callable[[], list[dict[str, Any]] | None] | None = None) -> None:
        """Writes one finished problem (labels, trace, then its result line) on the writer
        thread, so the event loop that sends requests never waits on serialising or fsync;
        ``trace_fn`` / ``labels_fn`` build their JSON there."""

        def write() -> None:
            self.run_dir.record(row, trace_fn() if trace_fn else None, labels_fn() if labels_fn else None)

        await asyncio.get_running_loop().run_in_executor(self._writer, write)

    async def until_stopped(self, work: Awaitable[T], total: int) -> T:
        """Awaits the run's ``work``. When the engine stops it (``EngineFault``) or the command
        is interrupted, the finished problems' queued writes land first, then a ``stopped``
        event (cause, problems of ``total`` left unfinished, engine counts) is logged and the
        error re-raised: a re-run resumes the unfinished ones."""
        try:
            return await work
        except (EngineFault, asyncio.CancelledError) as stop:
            self._writer.shutdown(wait=True)
            self.event({"event": "stopped", "time": time.time(), "cause": str(stop) or "interrupted",
                        "unfinished": total - len(self.run_dir.finished()), **self.stats_fn()})
            raise


@contextlib.asynccontextmanager
async def open_run(path: str | Path, config: dict[str, Any],
                   on_event: Callable[[dict[str, Any]], None] | None = None,
                   resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> AsyncIterator[Recording]:
    """Locks the run directory, writes (or checks, on resume) its config and yields a
    :class:`Recording`; SIGINT / SIGTERM inside the block raise ``Interrupted`` (exit 130 /
    143). The block ends only after every queued write has landed, also when it is
    interrupted or stopped. ``ponder run``, ``ponder label`` and ``ponder prove`` all record
    through it; ``resolve`` re-validates a resumed run's saved config (:func:`config_changes`)."""
    # Traces are serialised and written (fsync) on one writer thread, in finishing order.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ponder-record")
    async with stop_on_signals():
        with RunDir(path) as run_dir, contextlib.ExitStack() as writes:
            writes.callback(writer.shutdown, wait=True)
            run_dir.write_config(config, resolve=resolve)
            yield Recording(run_dir, writer, on_event)
