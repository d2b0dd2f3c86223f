"""Export a run's traces and label files as Hugging Face datasets (TRL formats), with cards.

``export_run`` reads a run directory (``training.export.sources.read_run``), builds one
``datasets.Dataset`` per format and saves each with ``save_to_disk`` next to a README.md
card (``training.export.card``)::

    RUN_DIR/datasets/prm[_<generator>]/     stepwise PRM (label files)
    RUN_DIR/datasets/sft/                   correct end-leaf solutions (traces)
    RUN_DIR/datasets/pairs[_<generator>]/   sibling-step preferences (labels, else tree values)
    RUN_DIR/datasets/value[_<generator>]/   value targets (label files)

The ``_<generator>`` suffix appears when a generator is named, so exports of different
generators sit side by side. An empty dataset is still saved, with its columns, and its
card says it is empty, so a pipeline's next step never finds a missing folder. A
re-export replaces the folder whole (built aside, then swapped in).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from search.aggregate import end_leaves
from search.protocols import ConfigError
from training.export.card import CardInfo, write_card
from training.export.formats import (
    DEFAULT_QUESTION_SEP,
    Rows,
    pair_rows_from_labels,
    pair_rows_from_traces,
    prm_rows,
    select_labels,
    value_rows,
)
from training.export.refine_pairs import SELF_REFINE, refine_pair_rows
from training.export.proofs import ALGORITHM, proof_pair_rows, proof_sft_rows
from training.export.sft import VerifyFn, sft_rows
from training.export.sources import RunData, read_run

if TYPE_CHECKING:
    import datasets

    from verifiers.tasks import TaskSet

Format = Literal["prm", "sft", "pairs", "value"]
FORMATS: tuple[Format, ...] = ("prm", "sft", "pairs", "value")


class ExportConfig(BaseModel):
    """How a run becomes datasets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: str | None = Field(None, description="Label generator whose labels make prm / value / pairs rows; None: the only one in the run (pairs: tree values).")
    soft: bool = Field(False, description="prm labels are the soft values in [0, 1] instead of booleans.")
    question_sep: str = Field(DEFAULT_QUESTION_SEP, description="Text between the question and the first step in plain-text prompts.")
    min_value: float | None = Field(None, ge=0.0, le=1.0, description="sft: keep solutions whose leaf value is >= this (spec 02: 0.2); None: off.")
    min_chars: int | None = Field(None, ge=0, description="sft: keep solutions of at least this many characters (spec 02: 50); None: off.")
    chat: bool = Field(False, description="sft: conversational rows (system + user prompt, assistant completion) instead of plain text.")
    margin: float = Field(0.0, ge=0.0, lt=1.0, description="pairs: keep sibling pairs whose value gap is strictly greater than this.")
    max_pairs_per_parent: int | None = Field(None, ge=1, description="pairs: at most this many pairs per prefix, largest gaps first; None: all.")


def features(fmt: Format, *, soft: bool = False, chat: bool = False) -> datasets.Features:
    """The column types of a format (fixed, so an empty dataset keeps its columns)."""
    from datasets import Features, List, Value

    text, pid = Value("string"), Value("string")
    match fmt:
        case "prm":
            return Features({"prompt": text, "completions": List(text),
                             "labels": List(Value("float64") if soft else Value("bool")),
                             "problem_id": pid})
        case "sft":
            if chat:
                message = {"role": text, "content": text}
                return Features({"prompt": List(message), "completion": List(message), "problem_id": pid})
            return Features({"prompt": text, "completion": text, "problem_id": pid})
        case "pairs":
            return Features({"prompt": text, "chosen": text, "rejected": text,
                             "margin": Value("float64"), "problem_id": pid})
        case "value":
            return Features({"prompt": text, "completion": text, "value": Value("float64"),
                             "problem_id": pid})
    raise ConfigError("formats", fmt, f"expected one of {', '.join(FORMATS)}")


def to_dataset(rows: Rows, feats: datasets.Features) -> datasets.Dataset:
    """A ``datasets.Dataset`` of ``rows`` with exactly ``feats`` as columns."""
    from datasets import Dataset

    columns = {name: [row[name] for row in rows.rows] for name in feats}
    return Dataset.from_dict(columns, features=feats)


def build_rows(fmt: Format, run: RunData, config: ExportConfig,
               verify_fn: VerifyFn | None = None) -> tuple[Rows, str]:
    """The rows of one format and a phrase naming their source (for the card)."""
    if run.algorithm == ALGORITHM and fmt in ("sft", "pairs"):
        if fmt == "sft":
            return proof_sft_rows(run.traces.values()), "bfs_prover traces: (state, tactic) on checked proofs"
        return proof_pair_rows(run.traces.values()), "bfs_prover traces: proof tactic vs errored tactic"
    if fmt == "sft":
        model = run.config.get("model")
        system_prompt = model.get("system_prompt") if isinstance(model, dict) else None
        rows = sft_rows(run.traces.values(), verify_fn, min_value=config.min_value,
                        min_chars=config.min_chars, question_sep=config.question_sep,
                        chat=config.chat, system_prompt=system_prompt)
        return rows, "traces: end leaves (verifier scores, else the run's task set)"
    if fmt == "pairs" and config.generator is None and verify_fn is not None and _self_refine(run):
        return (refine_pair_rows(run.traces.values(), verify_fn, question_sep=config.question_sep),
                "traces: self-refine answers, MCTSr structure rewards toward verified answers")
    if fmt == "pairs" and config.generator is None:
        return (pair_rows_from_traces(run.traces.values(), margin=config.margin,
                                      max_pairs_per_parent=config.max_pairs_per_parent,
                                      question_sep=config.question_sep),
                "traces: sibling node values (Q = W / N, else first value, else step score)")
    labels, generator = select_labels(run.labels, config.generator)
    source = f"label files: generator {generator}" if generator else "label files: none found"
    match fmt:
        case "prm":
            return prm_rows(labels, soft=config.soft, question_sep=config.question_sep), source
        case "value":
            return value_rows(labels, question_sep=config.question_sep), source
        case "pairs":
            return (pair_rows_from_labels(labels, margin=config.margin,
                                          max_pairs_per_parent=config.max_pairs_per_parent,
                                          question_sep=config.question_sep), source)
    raise ConfigError("formats", fmt, f"expected one of {', '.join(FORMATS)}")


def _options(fmt: Format, config: ExportConfig) -> dict[str, Any]:
    names = {"prm": ("generator", "soft", "question_sep"),
             "sft": ("min_value", "min_chars", "chat", "question_sep"),
             "pairs": ("generator", "margin", "max_pairs_per_parent", "question_sep"),
             "value": ("generator", "question_sep")}[fmt]
    return {name: getattr(config, name) for name in names}


def save_dataset(dataset: datasets.Dataset, target: Path) -> None:
    """Saves ``dataset`` to ``target``, replacing whatever was there (built aside first)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    import datasets

    # An empty dataset saved with the default of 0 shards cannot be loaded back.
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one line per dataset is printed by the caller
    try:
        dataset.save_to_disk(str(staging), num_shards=1 if len(dataset) == 0 else None)
    finally:
        if bars:
            datasets.enable_progress_bars()
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    if old.exists():
        shutil.rmtree(old)


def task_verify_fn(run: RunData, tasks: TaskSet | None = None) -> tuple[VerifyFn | None, Any]:
    """A ``(problem_id, text) -> correct`` backed by a task set, and a pool to close.

    ``tasks`` when given, else the task set named by the run config's ``tasks`` entry
    (``verifiers.tasks.load_tasks``; a relative JSONL path is read from the current
    directory, as the run did); None when the config names none. Unknown problem ids and
    unparseable or timed-out checks give None / False as the verdict says.
    """
    pool = None
    if tasks is None:
        spec = run.config.get("tasks")
        if not spec:
            return None, None
        from verifiers.pool import WorkerPool
        from verifiers.tasks import load_tasks

        pool = WorkerPool()
        tasks = load_tasks(spec, pool=pool)
    from verifiers.tasks import UnknownProblemError

    checker = tasks

    def verify(problem_id: str, text: str) -> bool | None:
        try:
            return checker.verify(problem_id, text).correct
        except UnknownProblemError:
            return None

    return verify, pool


def export_run(run_dir: str | Path, formats: Sequence[Format] = FORMATS, out_dir: str | Path | None = None,
               generator: str | None = None, soft: bool = False, *, tasks: TaskSet | None = None,
               **options: Any) -> dict[str, Path]:
    """Exports a run directory's traces and labels as datasets on disk, each with a card.

    Args:
        run_dir: The run directory (``config.yaml``, ``results.jsonl``, ``traces/``, ``labels/``).
        formats: Any of ``prm``, ``sft``, ``pairs``, ``value``.
        out_dir: Parent folder of the datasets; default ``RUN_DIR/datasets``.
        generator: Label generator for prm / value / pairs (see ``ExportConfig``).
        soft: Soft prm labels (floats in [0, 1]).
        tasks: Task set to check sft solutions that carry no verifier score; default: the
            one named in the run's config (loaded only when needed).
        **options: Further ``ExportConfig`` fields (``min_value``, ``min_chars``, ``chat``,
            ``margin``, ``max_pairs_per_parent``, ``question_sep``).

    Returns:
        The saved dataset folder of each format, by format name.

    Raises:
        RunDataError: The run directory cannot be read.
        ConfigError: An unknown format or option, an invalid value, or labels from several
            generators with none named.
    """
    try:
        config = ExportConfig(generator=generator, soft=soft, **options)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(".".join(str(p) for p in first["loc"]) or "options",
                          first.get("input"), first["msg"]) from None
    if isinstance(formats, str):
        formats = (formats,)  # type: ignore[assignment]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError("formats", unknown[0], f"expected one of {', '.join(FORMATS)}")
    run = read_run(run_dir)
    base = Path(out_dir) if out_dir is not None else run.path / "datasets"
    verify_fn, pool = (task_verify_fn(run, tasks) if ("sft" in formats and _needs_tasks(run))
                       or ("pairs" in formats and _self_refine(run)) else (None, None))
    written: dict[str, Path] = {}
    try:
        for fmt in dict.fromkeys(formats):
            rows, source = build_rows(fmt, run, config, verify_fn)
            feats = features(fmt, soft=config.soft, chat=config.chat)
            suffix = f"_{config.generator}" if config.generator and fmt != "sft" else ""
            target = base / f"{fmt}{suffix}"
            save_dataset(to_dataset(rows, feats), target)
            columns = {name: str(feat) for name, feat in feats.items()}
            info = CardInfo(fmt, source, _options(fmt, config), columns, source.startswith("label"))
            write_card(target, info, rows, run)
            written[fmt] = target
    finally:
        if pool is not None:
            pool.close()
    return written


def _self_refine(run: RunData) -> bool:
    """Whether the run's traces are self-refine trees (MC-NEST / MCTSr): their pairs follow
    the MCTSr recipe (``training.export.refine_pairs``), which needs the task set's verdicts."""
    return any(t.algorithm in SELF_REFINE for t in run.traces.values())


def _needs_tasks(run: RunData) -> bool:
    """Whether some end leaf lacks a stored verifier score (so a task set must check it)."""
    if run.algorithm == ALGORITHM:
        return False  # proofs are checked by the proof assistant, not by a task set
    for trace in run.traces.values():
        tree = trace.to_tree()
        if any("verifier" not in tree[i].scores for i in end_leaves(tree)):
            return True
    return False
