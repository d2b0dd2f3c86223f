"""benchmarks.extraction: the strict reader, the baseline loaded from git, rows from traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchmarks.extraction import baseline_extractor, measure, same_number, strict_reading, table


@pytest.mark.parametrize(("text", "expected"), [
    ("The answer is 7.", ("7", "stated")),
    ("The answer to the given arithmetic problem is 4.", ("4", "stated")),
    ("So, the answer is 19 + 94 = 147.", ("147", "stated")),
    ("The answer is indeed 9, as 99 - 90 indeed equals 9.", ("9", "stated")),
    ("The answer is 1. No wait, the answer is 2.", ("2", "stated")),
    ("76 + 78 = 112, which is the final answer.", ("112", "stated")),
    ("<answer>-3</answer>", ("-3", "stated")),
    ("work\n\n#### 12", ("12", "stated")),
    ("steps\n\n42", ("42", "bare")),
    ("steps\n\n3 + 4 = 7.", ("7", "equation")),
    ("So the sum is 7.", ("7", "result")),
    ("Therefore, the answer is N.", (None, "none")),
    ("We subtract 54 from 60 and think about it.", (None, "none")),
    ("The answer is 3 + 4", (None, "none")),
    ("  \n", (None, "empty")),
])
def test_strict_reading(text: str, expected: tuple[str | None, str]) -> None:
    assert strict_reading(text) == expected


def test_same_number() -> None:
    assert same_number("4", "4.0") and same_number(None, None) and same_number("1,000", "1000")
    assert not same_number("4", None) and not same_number("indeed 2", "2")


def test_baseline_from_git_reproduces_the_old_extraction() -> None:
    old = baseline_extractor("dfd2e6a")  # before issue 24
    assert old("The answer is indeed 2.", "chain_sum") == "indeed 2"
    assert old("The answer to the given arithmetic problem is 4.", "chain_sum") == \
        "The answer to the given arithmetic problem is 4."


def _node(i: int, parent: int | None, text: str, terminal: bool, children: list[int],
          error: str | None = None) -> dict:
    return {"id": i, "parent": parent, "text": text, "terminal": terminal, "children": children,
            "error": error}


def test_measure_reads_the_end_leaves_of_traces(tmp_path: Path) -> None:
    import reasoning_gym

    tasks = {"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 5,
             "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}
    gold = reasoning_gym.create_dataset("chain_sum", size=2, seed=5,
                                        **tasks["config"])[1]["answer"]
    run = tmp_path / "round-0" / "eval" / "cot"
    (run / "traces").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"tasks": tasks}))
    nodes = [_node(0, None, "", False, [1, 3, 4]), _node(1, 0, "Adding them.\n\n", False, [2]),
             _node(2, 1, f"The answer is indeed {gold}.", True, []),
             _node(3, 0, "The answer is 1000.", True, []),
             _node(4, 0, "The answer is 5.", True, [], error="TimeoutError")]
    (run / "traces" / "p.json").write_text(json.dumps({"problem_id": "chain_sum-5-1",
                                                       "nodes": nodes}))
    rows = measure([tmp_path], "dfd2e6a")
    assert [r["text"] for r in rows] == [f"Adding them.\n\nThe answer is indeed {gold}.",
                                         "The answer is 1000."]
    first = rows[0]
    assert first["baseline"] == f"indeed {gold}" and not first["baseline_agrees"]
    assert first["current"] == gold and first["current_agrees"] and first["current_correct"]
    assert not first["baseline_correct"] and first["reader_correct"]
    assert rows[1]["current"] == "1000" and not rows[1]["current_correct"]
    assert "| chain_sum | 2 |" in table(rows)
