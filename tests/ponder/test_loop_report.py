"""The loop report: metric arithmetic by hand, and report.md / PNGs of a hand-built LOOP_DIR.

The fake loop has two rounds. Round 0 evaluates (no label or training stage); round 1 has a
label run, a finished train_prm stage, an unfinished train_policy stage and an evaluation.
Every number asserted below is worked out in the comments.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from ponder.loop.metrics import (
    Sample,
    auroc,
    correct_counts,
    diversity,
    label_balance,
    mean_pass_at_k,
    pass_at_k,
    reward_auroc,
    samples_of,
    selection_accuracy,
    solution_steps,
    step_counts,
)
from ponder.loop.report import DASH, PLOT_FILES, write_report
from ponder.loop.summary import round_summary, stage_cost
from search.labels.records import StepLabel
from search.protocols import Problem, StepProposal, Usage, Verdict, VerdictStatus
from search.trace import SearchResult, SearchTrace
from search.tree import Tree

WORK = "Work.\n\n"
STEP1_PRM = 0.65  # every chain's first step; the min over a path is min(0.65, last)

# ---------------------------------------------------------------- builders


def add(tree: Tree, parent: int, text: str, *, terminal: bool = False, **fields: Any) -> int:
    tokens = tuple(range(len(text)))
    node = tree.add_child(parent, StepProposal(text=text, token_ids=tokens, logprobs=(-0.1,) * len(tokens),
                                               finish_reason="stop"), terminal=terminal)
    for name, value in fields.items():
        setattr(node, name, value)
    return node.id


Chain = tuple[str | None, float | None, float | None]
"""(answer, verifier score or None, PRM score of the last step or None)."""


def chains_tree(chains: list[Chain], *, prm: bool = True) -> Tree:
    """One two-step chain per entry: WORK, then 'The answer is X.' (or 'I give up.')."""
    tree = Tree(root_prefix=(1, 2))
    for answer, verifier, last in chains:
        first = add(tree, 0, WORK, scores={"prm": STEP1_PRM} if prm else {})
        scores = {k: v for k, v in (("prm", last), ("verifier", verifier)) if v is not None}
        text = f"The answer is {answer}." if answer is not None else "I give up."
        add(tree, first, text, terminal=True, answer=answer, scores=scores)
    return tree


def trace_json(tree: Tree, problem_id: str, algorithm: str) -> dict[str, Any]:
    result = SearchResult(answer=None, path=[0], tree=tree, usage=Usage(), algorithm=algorithm,
                          config={"algorithm": algorithm})
    return result.to_trace(Problem(problem_id, f"Question {problem_id}?")).model_dump(mode="json")


def run_dir(path: Path, algorithm: str, problems: dict[str, tuple[list[Chain], str, int]], *,
            prm: bool = True, mode: str = "solve") -> Path:
    """A run dir: problem id -> (chains, status of its result row, generated tokens)."""
    (path / "traces").mkdir(parents=True)
    config = {"name": path.name, "mode": mode, "tasks": None, "search": {"algorithm": algorithm, "num_samples": 4},
              "budget": {"max_generated_tokens": 4000}, "reward": {"kind": "pooling_prm"}, "temperature": 0.7}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    with (path / "results.jsonl").open("w") as f:
        for pid, (chains, status, tokens) in problems.items():
            row = {"id": pid, "answer": None, "status": status, "correct": status == "correct",
                   "usage": {"generated_tokens": tokens, "calls": 1}}
            f.write(json.dumps(row) + "\n")
            if status != "error":
                (path / "traces" / f"{pid}.json").write_text(
                    json.dumps(trace_json(chains_tree(chains, prm=prm), pid, algorithm)))
    return path


def step_label(pid: str, generator: str, value: float | None, hard: bool | None) -> StepLabel:
    return StepLabel(problem_id=pid, question="q", generator=generator, mode="inferred", node_id=1,
                     prefix=[], step=WORK, step_tokens=len(WORK), depth=1, value=value, label=hard, model="fake")


def done(folder: Path, **fields: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "DONE").write_text(json.dumps({"stage": folder.name, **fields}))


# Round 1, best_of_n (answer, verifier, last-step PRM):
#   p1 chose correct: 5 (1, .9)  6 (0, .4)  5 (1, .7)  7 (0, .7)   n=4 c=2 pass@1 .5  pass@4 1
#   p2 chose wrong:   3 (1, .6)  4 (0, .8)  4 (0, .2)  no answer (.5)  n=4 c=1 pass@1 .25 pass@4 1
#   p3 chose wrong:   1 (0, .3)  1 (0, .3)  1 (0, .1)  1 (0, .5)   n=4 c=0 pass@1 0   pass@4 0
R1_BON = {
    "p1": ([("5", 1.0, 0.9), ("6", 0.0, 0.4), ("5", 1.0, 0.7), ("7", 0.0, 0.7)], "correct", 100),
    "p2": ([("3", 1.0, 0.6), ("4", 0.0, 0.8), ("4", 0.0, 0.2), (None, None, 0.5)], "incorrect", 200),
    "p3": ([("1", 0.0, 0.3), ("1", 0.0, 0.3), ("1", 0.0, 0.1), ("1", 0.0, 0.5)], "incorrect", 300),
}
# Round 1, cot: one chain each; p1, p3 correct.
R1_COT = {"p1": ([("5", 1.0, None)], "correct", 10), "p2": ([("4", 0.0, None)], "incorrect", 20),
          "p3": ([("2", 1.0, None)], "correct", 30)}
# Round 0, best_of_n: p1 5 (1, .8) 6 (0, .3) chose correct; p2 4 (0, .9) 3 (1, .2) chose wrong; p3 errored.
R0_BON = {"p1": ([("5", 1.0, 0.8), ("6", 0.0, 0.3)], "correct", 50),
          "p2": ([("4", 0.0, 0.9), ("3", 1.0, 0.2)], "incorrect", 70),
          "p3": ([], "error", 0)}
R0_COT = {"p1": ([("5", 1.0, None)], "correct", 10)}


# Round 1's judge stage (ponder.loop.judge.judge_planted's layout; numbers made up, shown as written).
JUDGE = {"settings": {"tasks": ["chain_sum", "basic_arithmetic"], "num_problems": 10, "seed": 0}, "solutions": 40,
         "overall": {"solutions": 40, "steps": 100, "step_auroc": 0.75, "step_auroc_all": 0.7,
                     "first_error_accuracy": 0.625, "first_error_accuracy_erroneous": 0.5,
                     "first_error_accuracy_correct": 0.75, "solution_auroc": 0.8, "calibration": {"ece": 0.125},
                     "mean_score_right": 0.6, "mean_score_wrong": 0.25},
         "by_task": {}, "wall_seconds": 12.34}


@pytest.fixture
def loop_dir(tmp_path: Path) -> Path:
    loop = tmp_path / "loop"
    run_dir(loop / "round-0" / "eval" / "best_of_n", "best_of_n", R0_BON)
    run_dir(loop / "round-0" / "eval" / "cot", "cot", R0_COT, prm=False)
    done(loop / "round-0" / "eval", round=0, wall_seconds=12.5, generated_tokens=1000, calls=10)
    run_dir(loop / "round-1" / "eval" / "best_of_n", "best_of_n", R1_BON)
    run_dir(loop / "round-1" / "eval" / "cot", "cot", R1_COT, prm=False)
    done(loop / "round-1" / "eval", round=1, wall_seconds=20.0, generated_tokens=1500, calls=15)
    label = run_dir(loop / "round-1" / "label", "rest_mcts",
                    {"t1": ([("5", 1.0, None)], "correct", 5), "t2": ([("4", 0.0, None)], "incorrect", 5),
                     "t9": ([], "error", 0)}, prm=False, mode="label")
    (label / "labels").mkdir()
    files = {"t1": [step_label("t1", "rest_prm", 0.9, True), step_label("t1", "rest_prm", 0.1, False),
                    step_label("t1", "math_shepherd", 0.25, None)],
             "t2": [step_label("t2", "rest_prm", None, True)],
             "t9": [step_label("t9", "rest_prm", 0.0, False)]}  # errored problem: ignored
    for pid, labels in files.items():
        (label / "labels" / f"{pid}.jsonl").write_text("".join(x.model_dump_json() + "\n" for x in labels))
    done(label, round=1, wall_seconds=40.25, generated_tokens=3000, calls=30)
    done(loop / "round-1" / "train_prm", round=1, wall_seconds=100.0)  # no tokens, no calls
    done(loop / "round-1" / "judge", round=1, wall_seconds=30.0)
    (loop / "round-1" / "judge" / "judge.json").write_text(json.dumps(JUDGE))
    (loop / "round-1" / "train_policy").mkdir()  # still running: no marker
    return loop


# ---------------------------------------------------------------- metrics


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (10, 3, 1, 0.3),            # pass@1 = c / n
    (4, 1, 2, 0.5),             # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (6, 2, 4, 14 / 15),         # 1 - C(4,4)/C(6,4) = 1 - 1/15
    (5, 0, 3, 0.0),
    (8, 1, 8, 1.0),             # n - c < k
    (4, 4, 1, 1.0),
])
def test_pass_at_k_by_hand(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (3, 4, 1), (3, 1, 4), (3, 1, 0)])
def test_pass_at_k_rejects_bad_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_pass_at_k_skips_problems_with_fewer_than_k_samples() -> None:
    assert mean_pass_at_k([(4, 1), (2, 1), (4, 0)], 1) == (pytest.approx((0.25 + 0.5 + 0) / 3), 3)
    assert mean_pass_at_k([(4, 1), (2, 1), (4, 0)], 4) == (pytest.approx(0.5), 2)
    assert mean_pass_at_k([(2, 1)], 8) == (None, 0)


def test_auroc_by_hand_with_ties() -> None:
    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5, 0.5], [True, False, False]) == 0.5
    # positives .4, .8; negatives .1, .4: .4 beats .1 and ties .4 (1.5), .8 beats both (2) -> 3.5 / 4
    assert auroc([0.1, 0.4, 0.4, 0.8], [False, True, False, True]) == pytest.approx(0.875)
    assert auroc([0.3, 0.7], [True, True]) is None
    with pytest.raises(ValueError):
        auroc([0.1], [True, False])


def test_auroc_matches_pairwise_counting() -> None:
    rng = random.Random(3)
    scores = [rng.choice([0.1, 0.2, 0.3, 0.5, 0.9]) for _ in range(40)]
    labels = [rng.random() < 0.4 for _ in range(40)]
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    pairs = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    assert auroc(scores, labels) == pytest.approx(pairs / (len(pos) * len(neg)))


def test_samples_of_reads_verifier_scores_else_verifies() -> None:
    tree = chains_tree([("5", 1.0, 0.9), ("6", None, 0.4), (None, None, 0.3)])
    add(tree, 0, "cut at the budget")                                     # not an end leaf
    add(tree, 0, "The answer is 5.", terminal=True, answer="5", error="boom")  # errored: left out
    trace = SearchTrace.model_validate(trace_json(tree, "q1", "best_of_n"))
    asked: list[tuple[str, str]] = []

    def verify(pid: str, text: str) -> bool:
        asked.append((pid, text))
        return False

    samples = samples_of(trace, verify)
    assert [(s.answer, s.correct, s.reward_last, s.reward_min) for s in samples] == [
        ("5", True, 0.9, STEP1_PRM), ("6", False, 0.4, 0.4), (None, False, 0.3, 0.3)]
    assert asked == [("q1", WORK + "The answer is 6.")]  # the unanswered leaf is wrong without asking
    assert [s.correct for s in samples_of(trace)] == [True, None, False]
    assert correct_counts(samples_of(trace)) == (2, 1)


def test_diversity_selection_and_reward_auroc() -> None:
    def s(answer: str | None, text: str, correct: bool | None = None, last: float | None = None) -> Sample:
        return Sample(0, answer, text, correct, last, None)

    d = diversity([[s("5", "a"), s(" 5", "b"), s("6", "b")], [s(None, "x")], []])
    assert (d.problems, d.samples, d.distinct_answers, d.distinct_texts) == (2, 2.0, 1.0, 1.5)
    assert selection_accuracy([(2, True), (1, False), (0, False), (3, True)]) == (pytest.approx(2 / 3), 3)
    assert selection_accuracy([(0, True)]) == (None, 0)
    # unanswered, unverified and unscored samples are left out: .9 (right) vs .2 (wrong)
    pooled = [s("1", "a", True, 0.9), s("2", "b", False, 0.2), s(None, "c", False, 0.99),
              s("3", "d", None, 0.1), s("4", "e", False, None)]
    assert reward_auroc(pooled) == (1.0, 1, 1)


def test_step_counts_by_hand() -> None:
    """Steps per end leaf: blank steps do not count; unfinished leaves are not solutions."""
    tree = Tree(root_prefix=(1,))
    add(tree, 0, "3 + 4 = 7. The answer is 7.", terminal=True, answer="7")  # one step
    a = add(tree, 0, "3 + 4 = 7\n\n")
    b = add(tree, a, "7 + 2 = 9\n\n")
    add(tree, b, "The answer is 9.", terminal=True, answer="9")  # three steps
    c = add(tree, a, "  \n\n")  # a blank step
    add(tree, c, "The answer is 7.", terminal=True, answer="7")  # two steps (the blank one is not a step)
    add(tree, b, "7 + 2 =")  # cut off, not terminal: not a solution
    trace = SearchTrace.model_validate(trace_json(tree, "p", "mcts"))
    assert sorted(solution_steps(trace)) == [1, 2, 3]
    counts = step_counts([trace, trace])
    assert counts.solutions == 6 and counts.mean_steps == pytest.approx(2.0)
    assert counts.one_step_share == pytest.approx(1 / 3) and counts.histogram == {1: 2, 2: 2, 3: 2}
    assert step_counts([]).mean_steps is None


def test_label_balance() -> None:
    labels = [step_label("a", "rest_prm", 0.9, True), step_label("b", "rest_prm", 0.1, False),
              step_label("b", "rest_prm", None, True), step_label("a", "math_shepherd", 0.25, None)]
    balance = label_balance(labels)
    assert list(balance) == ["math_shepherd", "rest_prm"]
    b = balance["rest_prm"]
    assert (b.labels, b.problems, b.hard_labels, b.share_true, b.mean_value) == (3, 2, 3, pytest.approx(2 / 3), 0.5)
    m = balance["math_shepherd"]
    assert (m.labels, m.hard_labels, m.share_true, m.mean_value) == (1, 0, None, 0.25)


# ---------------------------------------------------------------- round summary and report


def test_round_summary_of_round_1(loop_dir: Path) -> None:
    summary = round_summary(loop_dir / "round-1")
    assert summary["round"] == 1 and summary["notes"] == []
    bon = summary["methods"]["best_of_n"]
    assert bon["accuracy"] == pytest.approx(1 / 3) and bon["problems"] == 3
    assert bon["pass_at_k"][1] == pytest.approx((0.5 + 0.25 + 0.0) / 3)
    assert bon["pass_at_k"][4] == pytest.approx(2 / 3)
    assert bon["pass_at_k"][8] is None
    assert bon["pass_at_n"] == pytest.approx(2 / 3)
    assert bon["distinct_answers"] == pytest.approx(2.0)       # {5,6,7} {3,4} {1}
    assert bon["distinct_texts"] == pytest.approx(7 / 3)       # 3, 3 (with 'I give up.'), 1
    # last-step PRM: right .9 .7 .6; wrong .4 .7 .8 .2 .3 .3 .1 .5 (p2's unanswered .5 left out)
    # .9 beats 8, .7 beats 6 + ties 1 (6.5), .6 beats 6 -> 20.5 / 24
    assert bon["auroc_last"] == pytest.approx(20.5 / 24)
    assert (bon["auroc_correct"], bon["auroc_wrong"]) == (3, 8)
    # min over steps (first step .65): right .65 .65 .6; wrong .4 .65 .65 .2 .3 .3 .1 .5
    # each .65 beats 6 + ties 2 (7), .6 beats 6 -> 20 / 24
    assert bon["auroc_min"] == pytest.approx(20 / 24)
    assert bon["selection_accuracy"] == 0.5 and bon["selection_problems"] == 2  # p1 yes, p2 no
    assert bon["tokens_per_problem"] == 200.0
    cot = summary["methods"]["cot"]
    assert cot["accuracy"] == pytest.approx(2 / 3) and cot["pass_at_k"][1] == pytest.approx(2 / 3)
    assert cot["pass_at_k"][4] is None and cot["auroc_last"] is None and cot["selection_accuracy"] == 1.0
    assert summary["label_problems"] == 2
    assert summary["labels"]["rest_prm"]["labels"] == 3  # t9 errored: its label is not counted
    assert summary["labels"]["rest_prm"]["share_true"] == pytest.approx(2 / 3)
    assert summary["labels"]["rest_prm"]["mean_value"] == pytest.approx(0.5)
    assert summary["stages"]["label"] == {"status": "done", "generated_tokens": 3000, "calls": 30,
                                          "wall_seconds": 40.25}
    assert summary["stages"]["train_prm"]["status"] == "done"
    assert summary["stages"]["train_prm"]["generated_tokens"] is None
    assert summary["stages"]["train_policy"]["status"] == "unfinished"
    assert summary["stages"]["judge"]["status"] == "done" and summary["judge"] == JUDGE
    # the label run's traces: t1 and t2, one two-step chain each (t9 errored: no trace)
    assert summary["label_steps"] == {"solutions": 2, "mean_steps": 2.0, "one_step_share": 0.0, "histogram": {2: 2}}


def test_round_0_has_no_label_or_training_stage(loop_dir: Path) -> None:
    summary = round_summary(loop_dir / "round-0")
    assert summary["labels"] is None
    assert {s: c["status"] for s, c in summary["stages"].items()} == {
        "label": "absent", "train_prm": "absent", "judge": "absent", "train_policy": "absent", "eval": "done"}
    assert summary["label_steps"] is None and summary["judge"] is None
    bon = summary["methods"]["best_of_n"]
    assert bon["problems"] == 2 and bon["errors"] == 1 and bon["accuracy"] == 0.5
    # right .8 .2, wrong .3 .9: only .8 > .3 -> 1 / 4; min: right .65 .2, wrong .3 .65 -> 1.5 / 4
    assert bon["auroc_last"] == 0.25 and bon["auroc_min"] == 0.375


def row_of(report: str, *cells: str) -> str:
    prefix = "| " + " | ".join(cells) + " |"
    found = [line for line in report.splitlines() if line.startswith(prefix)]
    assert len(found) == 1, f"no single row starting {prefix!r} in\n{report}"
    return found[0]


def test_write_report_tables_and_plots(loop_dir: Path) -> None:
    (loop_dir / "report.md").write_text("stale")
    path = write_report(loop_dir)
    report = path.read_text()
    assert path == loop_dir / "report.md" and "stale" not in report
    assert "## How to read" in report and "Rounds: 0, 1" in report
    assert "| round | method | accuracy | problems | pass@1 | pass@4 | pass@8 | pass@N |" in report
    assert row_of(report, "1", "best_of_n") == (
        "| 1 | best_of_n | 0.333 | 3 | 0.250 | 0.667 | — | 0.667 | 2.00 | 2.33 | 0.854 | 0.833 | 0.500 | 200.0 |")
    assert row_of(report, "0", "best_of_n") == (
        "| 0 | best_of_n | 0.500 | 2 | 0.500 | — | — | 1.000 | 2.00 | 2.00 | 0.250 | 0.375 | 0.500 | 60.0 |")
    assert row_of(report, "1", "cot").startswith("| 1 | cot | 0.667 | 3 | 0.667 | — | — | 0.667 | 1.00 | 1.00 | — | — | 1.000 |")
    # labels: round 0 has none; round 1 per generator
    assert row_of(report, "0", DASH, DASH) == "| 0 | — | — | — | — | — | — |"
    assert row_of(report, "1", "rest_prm") == "| 1 | rest_prm | 3 | 2 | 3 | 0.667 | 0.500 |"
    assert row_of(report, "1", "math_shepherd") == "| 1 | math_shepherd | 1 | 1 | 0 | — | 0.250 |"
    # cost: missing stages and fields are dashes, the unfinished stage says so
    assert row_of(report, "0", "label") == "| 0 | label | — | — | — | — |"
    assert row_of(report, "0", "eval") == "| 0 | eval | done | 1000 | 10 | 12.5 |"
    assert row_of(report, "1", "label") == "| 1 | label | done | 3000 | 30 | 40.2 |"
    assert row_of(report, "1", "train_prm") == "| 1 | train_prm | done | — | — | 100.0 |"
    assert row_of(report, "1", "train_policy") == "| 1 | train_policy | unfinished | — | — | — |"
    # steps per label-search solution and step judgement: rows only for rounds that have them
    assert row_of(report, "1", "2", "2.00") == "| 1 | 2 | 2.00 | 0.000 | 2: 2 |"
    assert row_of(report, "1", "chain_sum+basic_arithmetic x 10, seed 0") == (
        "| 1 | chain_sum+basic_arithmetic x 10, seed 0 | 40 | 0.750 | 0.700 | 0.625 | 0.500 | 0.750 | 0.800 | "
        "0.125 | 0.600 / 0.250 | 12.3 |")
    assert row_of(report, "1", "judge") == "| 1 | judge | done | — | — | 30.0 |"
    # settings from the eval configs, one row per method (same in both rounds)
    assert row_of(report, "best_of_n", "0, 1", "best_of_n", "max_generated_tokens=4000")
    for name in PLOT_FILES:
        png = loop_dir / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert f"(plots/{name})" in report
    assert write_report(loop_dir).read_text() == report  # regenerated, same input -> same report


def test_report_of_an_unfinished_loop_does_not_crash(tmp_path: Path) -> None:
    loop = tmp_path / "fresh"
    loop.mkdir()
    report = write_report(loop).read_text()
    assert "Rounds: —" in report
    (loop / "round-0" / "eval" / "cot").mkdir(parents=True)  # started: no config, no results yet
    (loop / "round-0" / "label").mkdir()
    (loop / "round-0" / "eval" / "DONE").write_text("{torn")
    report = write_report(loop).read_text()
    assert "| 0 | — | — | — | — | — | — | — | — | — | — | — | — | — |" in report.splitlines()
    assert row_of(report, "0", "label") == "| 0 | label | unfinished | — | — | — |"
    assert row_of(report, "0", "eval") == "| 0 | eval | unreadable | — | — | — |"
    assert all((loop / "plots" / name).stat().st_size > 0 for name in PLOT_FILES)


def test_stage_cost_of_a_marker_that_is_not_an_object(tmp_path: Path) -> None:
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "DONE").write_text("[1, 2]")
    assert stage_cost(tmp_path, "eval")["status"] == "unreadable"


def test_samples_verified_by_the_task_set_when_no_score(tmp_path: Path) -> None:
    run_dir(tmp_path / "round-3" / "eval" / "best_of_n", "best_of_n",
            {"p1": ([("5", None, 0.9), ("6", None, 0.1)], "correct", 10)})

    class FakeTasks:
        def verify(self, problem_id: str, candidate: str) -> Verdict:
            status = VerdictStatus.CORRECT if candidate.endswith("5.") else VerdictStatus.INCORRECT
            return Verdict(status)

    bon = round_summary(tmp_path / "round-3", tasks=FakeTasks())["methods"]["best_of_n"]  # type: ignore[arg-type]
    assert bon["pass_at_k"][1] == 0.5 and bon["auroc_last"] == 1.0 and bon["unverified_samples"] == 0
    unverified = round_summary(tmp_path / "round-3")["methods"]["best_of_n"]  # tasks: None in the config
    assert unverified["pass_at_k"][1] is None and unverified["unverified_samples"] == 2


def test_pass_at_k_over_part_of_the_problems_is_starred(tmp_path: Path) -> None:
    # p1: 4 samples, 1 right (pass@4 = 1); p2: 2 samples -> pass@4 covers p1 only
    run_dir(tmp_path / "round-0" / "eval" / "step_beam", "step_beam",
            {"p1": ([("1", 1.0, 0.9), ("2", 0.0, 0.1), ("3", 0.0, 0.2), ("4", 0.0, 0.3)], "correct", 10),
             "p2": ([("1", 0.0, 0.9), ("2", 0.0, 0.1)], "incorrect", 10)})
    beam = round_summary(tmp_path / "round-0")["methods"]["step_beam"]
    assert beam["pass_at_k"] == {1: pytest.approx(0.125), 4: 1.0, 8: None}
    assert beam["pass_at_k_partial"] == {1: False, 4: True, 8: False}
    report = write_report(tmp_path).read_text()
    assert row_of(report, "0", "step_beam").startswith("| 0 | step_beam | 0.500 | 2 | 0.125 | 1.000* | — | 0.500 |")


def test_label_run_inside_the_label_stage_dir_is_found(loop_dir: Path) -> None:
    """The runner keeps the label run in round-<r>/label/run (beside datasets/ and DONE)."""
    import shutil

    label = loop_dir / "round-1" / "label"
    inner = label.with_name("label-run")
    shutil.move(str(label), str(inner))
    label.mkdir()
    shutil.move(str(inner), str(label / "run"))
    assert round_summary(loop_dir / "round-1")["labels"]["rest_prm"]["labels"] == 3
