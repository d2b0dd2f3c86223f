"""PRM training rows from planted-error solutions of the TRAINING split, and PRM dataset mixes.

``planted_prm_rows``: solutions with one planted first error (``verifiers.planted``; the
training split only -- the held-out split is what ``ponder bench prm`` judges on) as stepwise
PRM rows: the correct solution with every step True, and the corrupted one up to its first
error (steps before it True, the error False; with ``after_error="false"`` the later steps
are kept and False too, the Math-Shepherd convention). Rows of one problem share a
``problem_id`` (``planted/<task>/<seed>/<index>``), so a trainer's split by problem keeps a
problem's two solutions together.

``form="pairs"`` gives the same solutions as minimal pairs instead: per problem, two one-step
rows with the same prefix (the steps before the planted error, folded into the prompt): the
correct step there, True, and the planted step, False. Every example of a pair differs from
its twin only in the one step the judge must check, the labels are exactly half True, and a
trainer spends no compute on the right steps of a problem that carry no contrast -- the
cheapest data per optimizer step for teaching a judge to check a step.

``mix_prm_datasets``: several exported PRM datasets (e.g. ``prm_symbolic`` and
``prm_math_shepherd`` of one label run) and planted rows in one dataset, labels as booleans or
floats, rows whose question is in the held-out split of a planted task left out (counted). A
``question`` column holds the exact question where a row knows it (planted rows; "" for the
others), which the trainer reads before splitting a prompt at ``question_sep`` (a pair row's
prompt ends in its prefix's last step delimiter, so its question cannot be told from it).
Where two sources label the same step differently, the trainer keeps the first prompt it sees
(``training.train.prm.judge_examples``), so the order of ``sources`` is their priority.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from search.protocols import ConfigError
from training.export.formats import DEFAULT_QUESTION_SEP, Rows, render_prompt

AfterError = Literal["drop", "false"]
PlantedForm = Literal["solutions", "pairs"]


class PlantedRowsConfig(BaseModel):
    """Planted-error solutions of the training split as extra PRM rows (:func:`planted_prm_rows`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(default_factory=lambda: ["chain_sum", "basic_arithmetic"],
                             description="Planted tasks (verifiers.planted.TASKS).")
    num_problems: int = Field(100, ge=1, description="Training-split problems per task (two rows each).")
    seed: int = Field(0, description="reasoning-gym seed and the corruptions' seed.")
    after_error: AfterError = Field("drop", description="drop: a corrupted row ends at its first error; false: the "
                                    "later steps are kept, labelled False (form solutions only).")
    form: PlantedForm = Field("solutions", description="solutions: each solution a row, its steps labelled; pairs: "
                              "per problem the right and the planted step at the error, one-step rows with the same "
                              "prefix (half True; see training.export.planted).")

    def rows(self, question_sep: str = DEFAULT_QUESTION_SEP, step_delimiter: str = "\n\n") -> Rows:
        """The rows these settings describe."""
        return planted_prm_rows(self.tasks, self.num_problems, seed=self.seed, after_error=self.after_error,
                                form=self.form, question_sep=question_sep, step_delimiter=step_delimiter)


def planted_prm_rows(tasks: Sequence[str], num_problems: int, *, seed: int = 0, after_error: AfterError = "drop",
                     form: PlantedForm = "solutions", question_sep: str = DEFAULT_QUESTION_SEP,
                     step_delimiter: str = "\n\n") -> Rows:
    """PRM rows from ``num_problems`` training-split problems of each task (two rows each).

    Args:
        tasks: Planted tasks (``verifiers.planted.TASKS``).
        num_problems: Problems per task.
        seed: reasoning-gym seed and the corruptions' seed.
        after_error: ``drop``: a corrupted row ends at its first error; ``false``: later steps
            are kept, labelled False.
        form: ``solutions``: a row per solution; ``pairs``: a row per solution holding only
            the step at the planted error, the steps before it folded into the prompt.
        question_sep: Text between the question and the first step.
        step_delimiter: Ends each step folded into a prompt (``pairs``; the trainer's
            ``step_delimiter`` splits them again).

    Raises:
        ConfigError: An unknown task, ``after_error`` or ``form``.
    """
    from verifiers.planted import TASKS, is_heldout, planted_solutions

    if after_error not in ("drop", "false"):
        raise ConfigError("after_error", after_error, "expected drop or false")
    if form not in ("solutions", "pairs"):
        raise ConfigError("form", form, "expected solutions or pairs")
    out = Rows()
    kinds: dict[str, int] = {}
    for task in tasks:
        if task not in TASKS:
            raise ConfigError("planted.tasks", task, f"no planted solutions for it; choose from {', '.join(TASKS)}")
        solutions = planted_solutions(task, num_problems, seed=seed, split="train")
        for s in solutions:
            if is_heldout(task, s.question):  # the generator's split already excludes them; never trust, check
                raise ConfigError("planted", s.id, "a held-out question reached the training rows")
        if form == "pairs":
            _pair_rows(solutions, out, kinds, question_sep, step_delimiter)
            continue
        for s in solutions:
            steps = list(s.steps)
            labels = [True] * len(steps)
            if s.first_error is not None:
                k = s.first_error
                labels = [True] * k + [False] * (len(steps) - k)
                if after_error == "drop":
                    steps, labels = steps[: k + 1], labels[: k + 1]
                kinds[str(s.corruption)] = kinds.get(str(s.corruption), 0) + 1
            out.rows.append({"prompt": render_prompt(s.question, (), question_sep), "completions": steps,
                             "labels": labels, "problem_id": "planted/" + s.id.rsplit("/", 1)[0],
                             "question": s.question})
            out.step_chars += [len(t) for t in steps]
    flat = [y for r in out.rows for y in r["labels"]]
    out.stats.update({"labelled_steps": len(flat), "share_true": sum(flat) / len(flat) if flat else None,
                      "corrupted_rows_by_kind": kinds})
    shape = "minimal pairs at the planted error" if form == "pairs" else f"after the first error: {after_error}"
    out.notes.append(f"planted solutions of the training split (tasks {', '.join(tasks)}, {num_problems} problems "
                     f"each, seed {seed}); {shape}")
    return out


def _pair_rows(solutions: Sequence[Any], out: Rows, kinds: dict[str, int], question_sep: str,
               step_delimiter: str) -> None:
    """Appends, per (correct, corrupted) pair of ``solutions``, the two one-step rows at the error."""
    correct = {s.id.rsplit("/", 1)[0]: s for s in solutions if s.first_error is None}
    for s in solutions:
        if s.first_error is None:
            continue
        problem = s.id.rsplit("/", 1)[0]
        right, k = correct[problem], s.first_error
        if tuple(right.steps[:k]) != tuple(s.steps[:k]):
            raise ConfigError("planted", s.id, "the planted solution's steps before its error differ from the correct one's")
        prompt = render_prompt(s.question, [t + step_delimiter for t in s.steps[:k]], question_sep)
        for step, label in ((right.steps[k], True), (s.steps[k], False)):
            out.rows.append({"prompt": prompt, "completions": [step], "labels": [label],
                             "problem_id": "planted/" + problem, "question": s.question})
            out.step_chars.append(len(step))
        kinds[str(s.corruption)] = kinds.get(str(s.corruption), 0) + 1


def _rows_of(path: Path) -> list[dict[str, Any]]:
    import datasets

    from models.embedded import hf_offline

    try:
        with hf_offline():
            data = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError("sources", str(path), f"is not a saved dataset ({err})") from None
    missing = [c for c in ("prompt", "completions", "labels") if c not in data.column_names]
    if missing:
        raise ConfigError("sources", str(path), f"lacks PRM column(s) {missing}")
    return data.to_list()


def _question(prompt: str, question_sep: str) -> str:
    return prompt.partition(question_sep)[0] if question_sep else prompt


def mix_prm_datasets(sources: Sequence[Path], out: Path, *, soft: bool = False, planted: Rows | None = None,
                     heldout_task: str | None = None, question_sep: str = DEFAULT_QUESTION_SEP) -> dict[str, Any]:
    """One PRM dataset from several (``sources`` in priority order) and planted rows (last).

    Args:
        sources: Exported PRM dataset folders.
        out: Where the mix is saved (replaced whole), with a README.md card.
        soft: Labels as floats in [0, 1] (booleans become 0 / 1); else booleans (a float
            label is True iff >= 0.5).
        planted: Rows of :func:`planted_prm_rows`, appended after the sources.
        heldout_task: The task the sources' questions come from; when it is a planted task,
            rows whose question is in its held-out split (``verifiers.planted.is_heldout``) are
            left out, so no question ``ponder bench prm`` judges on is trained on.
        question_sep: Text between question and steps in the sources' prompts.

    Returns:
        ``{"path", "rows", "by_source": {name: rows kept}, "heldout_dropped", "labelled_steps",
        "share_true" (share of labels >= 0.5)}``.
    """
    from training.export.exporter import features, save_dataset, to_dataset
    from verifiers.planted import TASKS, is_heldout

    check_heldout = heldout_task in TASKS
    mixed = Rows()
    by_source: dict[str, int] = {}
    dropped = 0
    parts = [(Path(p).name, _rows_of(Path(p))) for p in sources]
    if planted is not None:
        parts.append(("planted", planted.rows))
    for name, rows in parts:
        kept = 0
        for row in rows:
            if check_heldout and name != "planted" and is_heldout(heldout_task, _question(row["prompt"], question_sep)):
                dropped += 1
                continue
            labels = [float(y) if soft else bool(float(y) >= 0.5) for y in row["labels"]]
            mixed.rows.append({"prompt": row["prompt"], "completions": list(row["completions"]), "labels": labels,
                               "problem_id": str(row.get("problem_id", f"{name}/{kept}")),
                               "question": str(row.get("question") or "")})
            kept += 1
        by_source[name] = by_source.get(name, 0) + kept
    from datasets import Value

    feats = features("prm", soft=soft)
    feats["question"] = Value("string")  # the exact question where known (planted rows), else ""
    save_dataset(to_dataset(mixed, feats), Path(out))
    flat = [float(y) for r in mixed.rows for y in r["labels"]]
    summary = {"path": str(out), "rows": len(mixed.rows), "by_source": by_source, "heldout_dropped": dropped,
               "labelled_steps": len(flat),
               "share_true": sum(1 for y in flat if y >= 0.5) / len(flat) if flat else None}
    lines = ["# ponder `prm` dataset (a mix)", "", "Stepwise PRM rows from several sources, in priority order "
             "(a trainer keeps the first label of a step).", "", "## Sources"]
    lines += [f"- {n}: {k} rows" for n, k in by_source.items()]
    lines += ["", "## Counts", f"- rows: {summary['rows']}", f"- labelled steps: {summary['labelled_steps']}",
              f"- share of labels >= 0.5: {summary['share_true']}",
              f"- rows left out (question in the held-out split of {heldout_task}): {dropped}"]
    if planted is not None:
        lines += ["", "## Notes", *(f"- {n}" for n in planted.notes)]
    (Path(out) / "README.md").write_text("\n".join(lines) + "\n")
    return summary
