"""PRM rows from planted first errors (training split only) and mixes of PRM datasets."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from search.protocols import ConfigError
from training.export.planted import PlantedRowsConfig, mix_prm_datasets, planted_prm_rows
from training.train.data import question_and_prefix, split_steps
from verifiers.planted import is_heldout, planted_solutions


def test_planted_rows_label_steps_up_to_the_first_error() -> None:
    rows = planted_prm_rows(["chain_sum", "basic_arithmetic"], 4, seed=3).rows
    assert len(rows) == 16
    solutions = {s.id.rsplit("/", 1)[0]: s for s in planted_solutions("chain_sum", 4, seed=3, split="train")
                 if s.first_error is not None}
    for row in rows:
        task = row["problem_id"].split("/")[1]
        question = row["prompt"][: -len("\n\n")]
        assert row["prompt"].endswith("\n\n") and not is_heldout(task, question)
        if all(row["labels"]):
            continue
        # a corrupted solution: right steps, then the planted error, and nothing after it
        k = row["labels"].index(False)
        assert row["labels"] == [True] * k + [False]
        planted = solutions.get(row["problem_id"].removeprefix("planted/"))
        if planted is not None:
            assert k == planted.first_error and row["completions"] == list(planted.steps[: k + 1])
    # a problem's two rows share their problem id (a split by problem keeps them together)
    ids = [r["problem_id"] for r in rows]
    assert all(ids.count(i) == 2 for i in ids)


def test_planted_rows_can_keep_the_steps_after_the_error_as_false() -> None:
    rows = planted_prm_rows(["basic_arithmetic"], 6, seed=1, after_error="false").rows
    wrong = [r for r in rows if not all(r["labels"])]
    assert wrong and any(r["labels"][-1] is False and r["labels"].count(False) > 1 for r in wrong)
    for r in wrong:
        k = r["labels"].index(False)
        assert r["labels"] == [True] * k + [False] * (len(r["completions"]) - k)


def test_planted_pairs_are_the_right_and_the_planted_step_after_the_same_prefix(tmp_path: Path) -> None:
    rows = PlantedRowsConfig(tasks=["chain_sum", "basic_arithmetic"], num_problems=6, seed=2, form="pairs").rows()
    assert len(rows.rows) == 24 and rows.stats["share_true"] == 0.5
    assert sum(rows.stats["corrupted_rows_by_kind"].values()) == 12
    solutions = {s.id: s for task in ("chain_sum", "basic_arithmetic")
                 for s in planted_solutions(task, 6, seed=2, split="train")}
    for right, wrong in zip(rows.rows[::2], rows.rows[1::2], strict=True):
        assert right["problem_id"] == wrong["problem_id"] and right["prompt"] == wrong["prompt"]
        assert (right["labels"], wrong["labels"]) == ([True], [False])
        problem = right["problem_id"].removeprefix("planted/")
        good = solutions[problem + "/correct"]
        bad = next(s for i, s in solutions.items() if i.startswith(problem + "/") and s.first_error is not None)
        k = bad.first_error
        assert right["completions"] == [good.steps[k]] and wrong["completions"] == [bad.steps[k]]
        assert right["question"] == good.question and not is_heldout(bad.task, good.question)
        assert right["prompt"] == good.question + "\n\n" + "".join(t + "\n\n" for t in good.steps[:k])
    # through a mix, the trainer reads each pair row's question exactly and its prefix as the steps before
    summary = mix_prm_datasets([], tmp_path / "mix", planted=rows)
    assert summary["rows"] == 24 and summary["share_true"] == 0.5
    mixed = datasets.load_from_disk(str(tmp_path / "mix")).to_list()
    for row, (q, prefix) in zip(mixed, question_and_prefix(mixed, "\n\n"), strict=True):
        assert q == row["question"] and "\n\n" not in q
        k = len(split_steps(prefix, "\n\n"))
        assert k == next(s.first_error for i, s in solutions.items()
                         if i.startswith(row["problem_id"].removeprefix("planted/") + "/") and s.first_error is not None)
    assert any(split_steps(p, "\n\n") for _, p in question_and_prefix(mixed, "\n\n"))


def test_planted_rows_refuse_unknown_tasks() -> None:
    with pytest.raises(ConfigError, match="planted.tasks"):
        planted_prm_rows(["leg_counting"], 2)
    with pytest.raises(ConfigError, match="after_error"):
        planted_prm_rows(["chain_sum"], 2, after_error="keep")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="form"):
        planted_prm_rows(["chain_sum"], 2, form="triples")  # type: ignore[arg-type]


def save(path: Path, rows: list[dict]) -> Path:
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def heldout_and_train_questions(n: int) -> tuple[list[str], list[str]]:
    qs = [f"What is {i} + {i + 1}?" for i in range(200)]
    held = [q for q in qs if is_heldout("chain_sum", q)][:n]
    train = [q for q in qs if not is_heldout("chain_sum", q)][:n]
    return held, train


def test_mix_keeps_source_order_drops_held_out_questions_and_adds_planted_rows(tmp_path: Path) -> None:
    held, train = heldout_and_train_questions(2)
    symbolic = save(tmp_path / "prm_symbolic", [
        {"prompt": train[0] + "\n\n", "completions": ["1 + 2 = 3"], "labels": [True], "problem_id": "t0"},
        {"prompt": held[0] + "\n\n", "completions": ["1 + 2 = 4"], "labels": [False], "problem_id": "h0"},
    ])
    shepherd = save(tmp_path / "prm_math_shepherd", [
        {"prompt": train[0] + "\n\n", "completions": ["1 + 2 = 3"], "labels": [False], "problem_id": "t0"},
        {"prompt": train[1] + "\n\n", "completions": ["a", "b"], "labels": [True, False], "problem_id": "t1"},
        {"prompt": held[1] + "\n\n", "completions": ["c"], "labels": [True], "problem_id": "h1"},
    ])
    planted = PlantedRowsConfig(tasks=["chain_sum"], num_problems=3).rows()
    out = tmp_path / "prm_mix"
    summary = mix_prm_datasets([symbolic, shepherd], out, planted=planted, heldout_task="chain_sum")
    assert summary["by_source"] == {"prm_symbolic": 1, "prm_math_shepherd": 2, "planted": 6}
    assert summary["heldout_dropped"] == 2 and summary["rows"] == 9
    rows = datasets.load_from_disk(str(out)).to_list()
    assert [r["problem_id"] for r in rows[:3]] == ["t0", "t0", "t1"]  # symbolic first: the trainer keeps its label
    assert rows[0]["labels"] == [True] and rows[1]["labels"] == [False]
    assert all(not r["problem_id"].startswith("h") for r in rows)
    flat = [y for r in rows for y in r["labels"]]
    assert summary["labelled_steps"] == len(flat) and summary["share_true"] == pytest.approx(sum(flat) / len(flat))
    assert "held-out split of chain_sum): 2" in (out / "README.md").read_text()
    # soft: floats, hard labels as 0 / 1; a task without planted solutions drops nothing
    soft = mix_prm_datasets([symbolic], tmp_path / "soft", soft=True, heldout_task="leg_counting")
    assert soft["heldout_dropped"] == 0
    assert [r["labels"] for r in datasets.load_from_disk(str(tmp_path / "soft")).to_list()] == [[1.0], [0.0]]


def test_mix_of_a_folder_that_is_no_prm_dataset_names_it(tmp_path: Path) -> None:
    bad = save(tmp_path / "sft", [{"prompt": "q", "completion": "a", "problem_id": "p"}])
    with pytest.raises(ConfigError, match="lacks PRM column"):
        mix_prm_datasets([bad], tmp_path / "out")
    with pytest.raises(ConfigError, match="not a saved dataset"):
        mix_prm_datasets([tmp_path / "missing"], tmp_path / "out")
