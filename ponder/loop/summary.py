"""The loop report's data: a loop directory's round folders read into per-round summaries.

Reads only files (never live objects), so it can be rerun at any time on a loop directory,
finished or not::

    LOOP_DIR/round-<r>/label/            a label run dir (rounds >= 1)
    LOOP_DIR/round-<r>/eval/<method>/    one solve-mode run dir per evaluation method
    LOOP_DIR/round-<r>/judge/judge.json  the round's PRM on held-out planted first errors
    LOOP_DIR/round-<r>/<stage>/DONE      JSON done marker (ponder.loop.stages)

``round_summary`` is everything the report (``ponder.loop.report``) shows about one round.
Anything missing (round 0 has no label or training stage, a stage still running, a run dir
without results) is None or absent in it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ponder.loop.metrics import (
    PASS_K_DEFAULT,
    correct_counts,
    diversity,
    label_balance,
    mean_pass_at_k,
    reward_auroc,
    samples_of,
    selection_accuracy,
    step_counts,
)
from ponder.loop.judge import JUDGE_FILE
from search.protocols import PonderError, VerdictStatus
from training.export.sources import RunData, read_run
from verifiers.tasks import TaskSet, load_tasks

STAGES = ("label", "train_prm", "judge", "train_policy", "eval")
"""Stages of a round, in order; other stage folders with a DONE marker are listed after them."""
_ROUND = re.compile(r"^round-(\d+)$")


def round_index(path: Path) -> int | None:
    """The round number of a ``round-<r>`` folder, else None."""
    found = _ROUND.match(Path(path).name)
    return int(found.group(1)) if found else None


def _verify_fn(config: dict[str, Any], tasks: TaskSet | None, notes: list[str], where: str
               ) -> Callable[[str, str], bool | None]:
    """Checks a solution with ``tasks``, else the run config's task set (loaded on first use)."""
    loaded: list[TaskSet | None] = [tasks] if tasks is not None else []

    def verify(problem_id: str, text: str) -> bool | None:
        if not loaded:
            try:
                loaded.append(load_tasks(config["tasks"]) if config.get("tasks") else None)
            except PonderError as err:
                notes.append(f"{where}: could not load its task set to verify samples: {err}")
                loaded.append(None)
        if loaded[0] is None:
            return None
        try:
            verdict = loaded[0].verify(problem_id, text)
        except PonderError:
            return None
        return None if verdict.status is VerdictStatus.TIMEOUT else verdict.correct

    return verify


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def method_summary(run: RunData, tasks: TaskSet | None, notes: list[str],
                   ks: tuple[int, ...] = PASS_K_DEFAULT) -> dict[str, Any]:
    """Accuracy, pass@k, diversity, PRM AUROC and selection accuracy of one evaluation run."""
    verify = _verify_fn(run.config, tasks, notes, str(run.path))
    finished = [run.results[k] for k in run.finished]
    per_problem = {pid: samples_of(trace, verify) for pid, trace in sorted(run.traces.items())}
    counts = {pid: correct_counts(s) for pid, s in per_problem.items()}
    sampled = [nc for nc in counts.values() if nc[0] > 0]
    pooled = [s for samples in per_problem.values() for s in samples]
    div = diversity(per_problem.values())
    auroc_last, pos, neg = reward_auroc(pooled, "last")
    auroc_min, _, _ = reward_auroc(pooled, "min")
    selection, selection_problems = selection_accuracy(
        (counts[pid][1], bool(run.results[pid].get("correct"))) for pid in counts)
    pass_k = {k: mean_pass_at_k(sampled, k) for k in ks}
    usage = [r.get("usage") or {} for r in finished]
    return {
        "path": str(run.path), "algorithm": run.algorithm, "problems": len(finished),
        "errors": len(run.errored),
        "accuracy": _mean([float(bool(r.get("correct"))) for r in finished]),
        "tokens_per_problem": _mean([float(u.get("generated_tokens", 0)) for u in usage]),
        "calls_per_problem": _mean([float(u.get("calls", 0)) for u in usage]),
        "samples_per_problem": div.samples,
        "pass_at_k": {k: v for k, (v, _) in pass_k.items()},
        "pass_at_k_partial": {k: 0 < m < len(sampled) for k, (_, m) in pass_k.items()},
        "pass_at_n": _mean([float(c > 0) for _, c in sampled]),
        "distinct_answers": div.distinct_answers, "distinct_texts": div.distinct_texts,
        "auroc_last": auroc_last, "auroc_min": auroc_min, "auroc_correct": pos, "auroc_wrong": neg,
        "selection_accuracy": selection, "selection_problems": selection_problems,
        "unverified_samples": sum(1 for s in pooled if s.correct is None),
        "missing_traces": len(run.missing_traces),
        "settings": {key: run.config.get(key) for key in ("tasks", "budget", "search", "reward", "temperature")},
    }


def stage_cost(round_dir: Path, stage: str) -> dict[str, Any]:
    """A stage's status (``done``, ``unfinished``, ``absent``, ``unreadable``) and, when done,
    the tokens, calls and wall seconds of its DONE marker (None where the marker has none)."""
    folder = Path(round_dir) / stage
    out: dict[str, Any] = {"status": "absent", "generated_tokens": None, "calls": None, "wall_seconds": None}
    if not folder.is_dir():
        return out
    marker = folder / "DONE"
    if not marker.is_file():
        return {**out, "status": "unfinished"}
    try:
        data = json.loads(marker.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return {**out, "status": "unreadable"}
    if not isinstance(data, dict):
        return {**out, "status": "unreadable"}
    return {"status": "done", **{k: data.get(k) for k in ("generated_tokens", "calls", "wall_seconds")}}


def round_summary(round_dir: str | Path, tasks: TaskSet | None = None) -> dict[str, Any]:
    """Everything the report shows about one round.

    Args:
        round_dir: ``LOOP_DIR/round-<r>``.
        tasks: The held-out task set, to verify samples that carry no verifier score; None:
            each evaluation run's own ``tasks`` config is loaded when needed.

    Returns:
        ``round``, ``path``, ``methods`` (method name -> ``method_summary``), ``labels``
        (generator -> label balance, None without a label run), ``label_problems``,
        ``label_steps`` (steps per solution of the label search: ``StepCounts`` fields, None
        without a label run), ``judge`` (the judge stage's ``judge.json``: the round's PRM on
        the held-out planted set; None without one),
        ``stages`` (stage -> ``stage_cost``) and ``notes`` (what could not be read).
    """
    round_dir = Path(round_dir)
    notes: list[str] = []
    methods: dict[str, Any] = {}
    eval_dir = round_dir / "eval"
    for folder in sorted(p for p in eval_dir.glob("*") if p.is_dir()) if eval_dir.is_dir() else []:
        if not (folder / "config.yaml").is_file():
            continue
        try:
            methods[folder.name] = method_summary(read_run(folder), tasks, notes)
        except (PonderError, OSError) as err:
            notes.append(f"{folder}: not read: {err}")
    labels, label_problems, label_steps = None, None, None
    # the label run dir: the runner's round-<r>/label/run, or round-<r>/label itself
    label_dir = next((d for d in (round_dir / "label" / "run", round_dir / "label") if (d / "config.yaml").is_file()),
                     None)
    if label_dir is not None:
        try:
            label_run = read_run(label_dir)
        except (PonderError, OSError) as err:
            notes.append(f"{label_dir}: not read: {err}")
        else:
            labels = {g: vars(b) for g, b in label_balance(label_run.labels).items()}
            label_problems = len(label_run.finished)
            label_steps = vars(step_counts(label_run.traces.values()))
    judge = None
    judge_file = round_dir / "judge" / JUDGE_FILE
    if judge_file.is_file():
        try:
            judge = json.loads(judge_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
            notes.append(f"{judge_file}: not read: {err}")
    extra = sorted(p.name for p in round_dir.glob("*") if (p / "DONE").is_file() and p.name not in STAGES)
    stages = {s: stage_cost(round_dir, s) for s in (*STAGES, *extra)}
    return {"round": round_index(round_dir), "path": str(round_dir), "methods": methods, "labels": labels,
            "label_problems": label_problems, "label_steps": label_steps, "judge": judge, "stages": stages,
            "notes": notes}
