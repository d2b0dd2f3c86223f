"""The loop's per-round report: run directories and done markers in, report.md and PNGs out.

Reads only files (never live objects), so it can be rerun at any time on a loop directory,
finished or not::

    LOOP_DIR/round-<r>/label/            a label run dir (rounds >= 1)
    LOOP_DIR/round-<r>/eval/<method>/    one solve-mode run dir per evaluation method
    LOOP_DIR/round-<r>/judge/judge.json  the round's PRM on held-out planted first errors
    LOOP_DIR/round-<r>/<stage>/DONE      JSON done marker (ponder.loop.stages)

``write_report`` writes ``LOOP_DIR/report.md`` and ``LOOP_DIR/plots/{accuracy,prm,cost}.png``
from scratch. Anything missing (round 0 has no label or training stage, a stage still
running, a run dir without results) is shown as "—".
"""

from __future__ import annotations

import json
import os
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
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
PLOT_FILES = ("accuracy.png", "prm.png", "cost.png")
DASH = "—"
_ROUND = re.compile(r"^round-(\d+)$")

HOW_TO_READ = (
    "Each round r >= 1 searched training problems in label mode, trained a PRM and the policy on "
    "the labels and evaluated the new models on held-out problems; round 0 evaluates the base "
    "models. *accuracy* is the share of held-out problems whose chosen answer is correct at the "
    "fixed per-problem budget (see Settings). *pass@k* is the unbiased estimate (Chen et al. 2021) "
    "that k of a problem's sampled solutions (end leaves of its search) include a correct one, "
    "averaged over problems with at least k samples (* = not every problem had k); *pass@N* uses "
    "all of them (exploration). *answers* / *texts*: distinct final answers / solution texts per "
    "problem (diversity; a collapsing policy drives them to 1). *AUROC* is how well the PRM score "
    "of a solution (its last step, or the minimum over its steps) separates correct from wrong "
    "solutions (0.5 = chance). *selection* is the share of problems with a correct sample where "
    "the search chose a correct answer (exploitation, B-STaR). Labels: per generator, the share "
    "of True hard labels and the mean soft value; cost: what each stage spent. "
    "'—' means not there (not run, not finished, or not defined).")


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


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _settings(summaries: list[dict[str, Any]]) -> list[str]:
    """One row per method and distinct setting, with the rounds that used it."""
    seen: dict[tuple[str, str], list[int | None]] = {}
    for s in summaries:
        for name, m in s["methods"].items():
            key = json.dumps(m["settings"], sort_keys=True, default=str)
            seen.setdefault((name, key), []).append(s["round"])
    rows = []
    for (name, key), rounds in sorted(seen.items(), key=lambda kv: (kv[0][0], [-1 if r is None else r for r in kv[1]])):
        cfg = json.loads(key)
        search = {k: v for k, v in (cfg.get("search") or {}).items() if k != "algorithm"}
        reward = (cfg.get("reward") or {}).get("kind")
        rows.append([name, ", ".join(_fmt(r) for r in rounds), _fmt((cfg.get("search") or {}).get("algorithm")),
                     _inline(cfg.get("budget")), _inline(search), _inline(cfg.get("tasks")), _fmt(reward),
                     _fmt(cfg.get("temperature"), 2)])
    return _table(["method", "rounds", "algorithm", "budget", "search", "tasks", "reward", "temperature"], rows)


def _inline(value: Any) -> str:
    if not value:
        return DASH
    if isinstance(value, dict):
        return ", ".join(f"{k}={_inline(v)}" for k, v in value.items() if v is not None) or DASH
    return str(value).replace("|", "\\|")


def render_report(summaries: list[dict[str, Any]], title: str) -> str:
    """The Markdown report of ``round_summary`` outputs, in round order."""
    out = [f"# Loop report: {title}", "", f"Rounds: {', '.join(_fmt(s['round']) for s in summaries) or DASH}",
           "", "## How to read", "", HOW_TO_READ, "", "## Round table (held-out evaluation)", ""]
    ks = sorted({k for s in summaries for m in s["methods"].values() for k in m["pass_at_k"]}) or list(PASS_K_DEFAULT)
    rows = []
    for s in summaries:
        if not s["methods"]:
            rows.append([_fmt(s["round"]), DASH] + [DASH] * (9 + len(ks)))
        for name, m in s["methods"].items():
            pass_k = [_fmt(m["pass_at_k"].get(k)) + ("*" if m["pass_at_k_partial"].get(k) else "") for k in ks]
            rows.append([_fmt(s["round"]), name, _fmt(m["accuracy"]), _fmt(m["problems"]), *pass_k,
                         _fmt(m["pass_at_n"]), _fmt(m["distinct_answers"], 2), _fmt(m["distinct_texts"], 2),
                         _fmt(m["auroc_last"]), _fmt(m["auroc_min"]), _fmt(m["selection_accuracy"]),
                         _fmt(m["tokens_per_problem"], 1)])
    out += _table(["round", "method", "accuracy", "problems", *(f"pass@{k}" for k in ks), "pass@N",
                   "answers", "texts", "AUROC last", "AUROC min", "selection", "tokens/problem"], rows)
    out += ["", "## Settings (from the evaluation run configs)", "", *_settings(summaries), "", "## Labels", ""]
    rows = []
    for s in summaries:
        if not s["labels"]:
            rows.append([_fmt(s["round"]), DASH, DASH, _fmt(s["label_problems"]), DASH, DASH, DASH])
        for g, b in (s["labels"] or {}).items():
            rows.append([_fmt(s["round"]), g, _fmt(b["labels"]), _fmt(b["problems"]), _fmt(b["hard_labels"]),
                         _fmt(b["share_true"]), _fmt(b["mean_value"])])
    out += _table(["round", "generator", "labels", "problems", "hard labels", "share True", "mean value"], rows)
    out += ["", "Steps per solution of the label search (labels are about steps only when solutions have several):",
            ""]
    rows = []
    for s in summaries:
        c = s.get("label_steps")
        if c is None:
            continue
        hist = ", ".join(f"{k}: {v}" for k, v in c["histogram"].items()) or DASH
        rows.append([_fmt(s["round"]), _fmt(c["solutions"]), _fmt(c["mean_steps"], 2), _fmt(c["one_step_share"]), hist])
    out += _table(["round", "solutions", "mean steps", "one-step share", "steps: solutions"], rows) if rows else [DASH]
    out += ["", "## Step judgement (the round's PRM on held-out planted first errors)", "",
            "As `ponder bench prm` scores it: step AUROC over the steps up to the first error (*all*: every step "
            "from it on wrong), first-error accuracy (the first step below the threshold is the planted one; "
            "none for a correct solution), solution AUROC (minimum step score), ECE (10 bins).", ""]
    rows = []
    for s in summaries:
        j = s.get("judge")
        if not j:
            continue
        m = j.get("overall") or {}
        settings = j.get("settings") or {}
        tasks = "+".join(settings.get("tasks") or [])
        where = f"{tasks} x {settings.get('num_problems', DASH)}, seed {settings.get('seed', DASH)}"
        rows.append([_fmt(s["round"]), _inline(where), _fmt(m.get("solutions")), _fmt(m.get("step_auroc")),
                     _fmt(m.get("step_auroc_all")), _fmt(m.get("first_error_accuracy")),
                     _fmt(m.get("first_error_accuracy_erroneous")), _fmt(m.get("first_error_accuracy_correct")),
                     _fmt(m.get("solution_auroc")), _fmt((m.get("calibration") or {}).get("ece")),
                     f"{_fmt(m.get('mean_score_right'))} / {_fmt(m.get('mean_score_wrong'))}",
                     _fmt(j.get("wall_seconds"), 1)])
    out += _table(["round", "planted set", "solutions", "step AUROC", "step AUROC (all)", "first-error acc",
                   "on erroneous", "on correct", "solution AUROC", "ECE", "mean score right / wrong", "wall (s)"],
                  rows) if rows else [DASH]
    out += ["", "## Cost per stage", ""]
    rows = []
    for s in summaries:
        for stage, c in s["stages"].items():
            rows.append([_fmt(s["round"]), stage, DASH if c["status"] == "absent" else c["status"],
                         _fmt(c["generated_tokens"]), _fmt(c["calls"]), _fmt(c["wall_seconds"], 1)])
    out += _table(["round", "stage", "status", "generated tokens", "calls", "wall (s)"], rows)
    out += ["", "## Plots", ""] + [f"![{f[:-4]}]({PLOTS_DIR}/{f})" for f in PLOT_FILES]
    notes = [n for s in summaries for n in s["notes"]]
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def _series(summaries: list[dict[str, Any]], method: str, key: str) -> tuple[list[int], list[float]]:
    points = [(s["round"], s["methods"][method].get(key)) for s in summaries
              if s["round"] is not None and method in s["methods"]]
    points = [(r, v) for r, v in points if v is not None]
    return [r for r, _ in points], [v for _, v in points]


def _plot_lines(summaries: list[dict[str, Any]], panels: list[tuple[str, str]], path: Path) -> None:
    """One panel per ``(metric key, title)``: the metric by round, one line per method."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * len(panels), 4))
    methods = sorted({m for s in summaries for m in s["methods"]})
    rounds = sorted({s["round"] for s in summaries if s["round"] is not None})
    for ax, (key, title) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        drawn = False
        for i, method in enumerate(methods):
            xs, ys = _series(summaries, method, key)
            if xs:
                ax.plot(xs, ys, marker="o", label=method, color=f"C{i % 10}")
                drawn = True
        ax.set(title=title, xlabel="round", ylim=(-0.02, 1.02), xticks=rounds)
        if drawn:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _plot_cost(summaries: list[dict[str, Any]], path: Path) -> None:
    """Generated tokens and wall seconds by round, stacked by stage (a stage keeps its colour)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    stages = list(dict.fromkeys(st for s in summaries for st in s["stages"]))
    rounds = [s for s in summaries if s["round"] is not None]
    for ax, (key, title) in zip(fig.subplots(1, 2), [("generated_tokens", "generated tokens"),
                                                      ("wall_seconds", "wall seconds")], strict=True):
        bottom = {s["round"]: 0.0 for s in rounds}
        for i, stage in enumerate(stages):
            points = [(s["round"], s["stages"].get(stage, {}).get(key)) for s in rounds]
            points = [(r, float(v)) for r, v in points if isinstance(v, int | float)]
            if points:
                ax.bar([r for r, _ in points], [v for _, v in points], width=0.6,
                       bottom=[bottom[r] for r, _ in points], label=stage, color=f"C{i % 10}")
                for r, v in points:
                    bottom[r] += v
        ax.set(title=f"{title} by round, per stage", xlabel="round", xticks=[s["round"] for s in rounds])
        if any(bottom.values()):
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_report(loop_dir: str | Path, tasks: TaskSet | None = None) -> Path:
    """Writes ``LOOP_DIR/report.md`` and its plots from every ``round-*`` folder present.

    Args:
        loop_dir: The loop directory.
        tasks: The held-out task set (see ``round_summary``); None: each run's own.

    Returns:
        The path of ``report.md``.
    """
    loop_dir = Path(loop_dir)
    plots = loop_dir / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    for name in PLOT_FILES:
        (plots / name).unlink(missing_ok=True)
    target = loop_dir / REPORT_FILE
    target.unlink(missing_ok=True)
    rounds = sorted((p for p in loop_dir.glob("round-*") if p.is_dir() and round_index(p) is not None),
                    key=round_index)
    summaries = [round_summary(p, tasks) for p in rounds]
    _plot_lines(summaries, [("accuracy", "held-out accuracy")], plots / "accuracy.png")
    _plot_lines(summaries, [("auroc_last", "PRM AUROC (last step)"), ("selection_accuracy", "selection accuracy")],
                plots / "prm.png")
    _plot_cost(summaries, plots / "cost.png")
    tmp = target.with_suffix(".md.tmp")
    tmp.write_text(render_report(summaries, loop_dir.name))
    os.replace(tmp, target)
    return target
