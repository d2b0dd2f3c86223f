"""The loop's per-round report: ``round_summary`` outputs in, report.md and PNGs out.

``write_report`` reads every ``LOOP_DIR/round-<r>`` folder (``ponder.loop.summary``) and writes
``LOOP_DIR/report.md`` and ``LOOP_DIR/plots/{accuracy,prm,cost}.png`` from scratch. Anything
missing (round 0 has no label or training stage, a stage still running, a run dir without
results) is shown as "—".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ponder.loop.metrics import PASS_K_DEFAULT
from ponder.loop.summary import round_index, round_summary
from verifiers.tasks import TaskSet

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
PLOT_FILES = ("accuracy.png", "prm.png", "cost.png")
DASH = "—"

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
