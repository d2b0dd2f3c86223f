"""Task sources: JSONL conventions, malformed files, TaskSet keeping golds apart."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from search.protocols import ConfigError, PonderError, Problem, VerdictStatus
from verifiers.jsonl import TaskFileError, gold_from_answer
from verifiers.tasks import JsonlTaskConfig, TaskSet, UnknownProblemError, load_tasks

GSM8K = [
    {"question": "Natalia sold 48 clips in April and half as many in May. How many in total?",
     "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\n48+24 = <<48+24=72>>72\n#### 72"},
    {"question": "Weng earns $12 an hour. How much for 50 minutes?",
     "answer": "12/60 = $<<12/60=0.2>>0.2 per minute.\n0.2 x 50 = $10.\n#### 10"},
]
MATH = [
    {"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?", "level": "Level 1",
     "solution": "We have $\\frac12 + \\frac14 = \\boxed{\\frac{3}{4}}$."},
    {"problem": "Find $x$ if $2x = 10$.",
     "solution": "Dividing, $x = \\boxed{5}$. (Not $\\boxed{6}$ in a draft; the last box counts.) "
                 "Final: $\\boxed{5}$."},
]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def all_problem_text(problem: Problem) -> str:
    return json.dumps(dataclasses.asdict(problem))


def test_gsm8k_convention(tmp_path: Path) -> None:
    tasks = load_tasks({"source": "jsonl", "path": str(write_jsonl(tmp_path / "gsm.jsonl", GSM8K))})
    assert isinstance(tasks, TaskSet) and len(tasks) == 2
    first = tasks.problems[0]
    assert first.question == GSM8K[0]["question"] and first.id == "gsm-1"
    assert tasks.verify(first.id, "48 + 24 = 72\n#### 72").status is VerdictStatus.CORRECT
    assert tasks.verify(first.id, "#### 24").status is VerdictStatus.INCORRECT
    assert tasks.verify("gsm-2", "The answer is $10.").status is VerdictStatus.CORRECT


def test_math_convention(tmp_path: Path) -> None:
    cfg = JsonlTaskConfig(path=write_jsonl(tmp_path / "math.jsonl", MATH), question_field="problem",
                          answer_field="solution", answer_format="math")
    tasks = load_tasks(cfg)
    assert [p.question for p in tasks.problems] == [m["problem"] for m in MATH]
    ids = [p.id for p in tasks.problems]
    assert tasks.verify(ids[0], "so \\boxed{0.75}").status is VerdictStatus.CORRECT
    assert tasks.verify(ids[1], "x = \\boxed{5}").status is VerdictStatus.CORRECT
    assert tasks.verify(ids[1], "x = \\boxed{6}").status is VerdictStatus.INCORRECT


@pytest.mark.parametrize(
    ("raw", "fmt", "gold"),
    [
        ("work\n#### 1,234", "auto", "1,234"),
        ("so $\\boxed{\\frac{1}{2}}$.", "auto", "\\frac{1}{2}"),
        (" 42 ", "auto", "42"),
        ("#### 5", "plain", "#### 5"),
        ("no marker here", "gsm8k", None),
        ("no box here", "math", None),
    ],
)
def test_gold_from_answer(raw: str, fmt: str, gold: str | None) -> None:
    assert gold_from_answer(raw, fmt) == gold  # type: ignore[arg-type]


def test_golds_never_reach_problems(tmp_path: Path) -> None:
    rows = [{"id": "p1", "question": "What is 6 times 7?", "answer": "#### 4242"},
            {"id": 7, "question": "Name the number.", "answer": 98765}]
    tasks = load_tasks({"source": "jsonl", "path": str(write_jsonl(tmp_path / "t.jsonl", rows)),
                        "id_field": "id"})
    assert [p.id for p in tasks.problems] == ["p1", "7"]
    for problem in tasks.problems:
        text = all_problem_text(problem)
        assert "4242" not in text and "98765" not in text and "answer" not in problem.metadata
    assert "4242" not in repr(tasks)
    assert [n for n in dir(tasks) if "gold" in n and not n.startswith("_")] == []


async def test_averify_and_oracle(tmp_path: Path) -> None:
    tasks = load_tasks({"source": "jsonl", "path": str(write_jsonl(tmp_path / "g.jsonl", GSM8K))})
    oracle = tasks.oracle("g-1")
    assert (await oracle("#### 72")).status is VerdictStatus.CORRECT
    assert (await oracle("#### 71")).status is VerdictStatus.INCORRECT
    assert (await tasks.averify("g-2", "\\boxed{10}")).correct
    assert tasks.verifier.extract("so \\boxed{9}") == "9"
    with pytest.raises(UnknownProblemError):
        tasks.oracle("nope")
    with pytest.raises(UnknownProblemError):
        tasks.verify("nope", "1")


def test_limit(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", GSM8K)
    assert len(load_tasks({"source": "jsonl", "path": str(path), "limit": 1})) == 1


MALFORMED = [
    # (lines, fields, line number, words the message must contain)
    (['{"question": "q", "answer": "1"}', '{"question": "q2", "answer": '], {}, 2,
     ["invalid JSON"]),
    (['{"question": "q", "answer": "1"}', "not json at all"], {}, 2, ["invalid JSON"]),
    (['{"question": "q"}'], {}, 1, ["'answer'", "missing"]),
    (['{"answer": "1"}'], {}, 1, ["'question'", "missing"]),
    (['{"question": 5, "answer": "1"}'], {}, 1, ["'question'", "must be a string", "5"]),
    (['{"question": "q", "answer": ["1"]}'], {}, 1, ["'answer'", "list"]),
    (['{"question": "q", "answer": true}'], {}, 1, ["'answer'", "bool"]),
    (['{"question": "   ", "answer": "1"}'], {}, 1, ["'question'", "empty"]),
    (['["question", "answer"]'], {}, 1, ["JSON object", "list"]),
    (['{"question": "q", "answer": "no marker"}'], {"answer_format": "gsm8k"}, 1,
     ["'answer'", "no gold", "gsm8k"]),
    (['{"problem": "q", "solution": "no box"}'],
     {"question_field": "problem", "answer_field": "solution", "answer_format": "math"}, 1,
     ["'solution'", "no gold"]),
    (['{"id": "a", "question": "q", "answer": "1"}', '{"id": "a", "question": "r", "answer": "2"}'],
     {"id_field": "id"}, 2, ["'id'", "duplicate", "line 1"]),
    (['{"question": "q", "answer": "1"}'], {"id_field": "id"}, 1, ["'id'", "missing"]),
]


@pytest.mark.parametrize(("lines", "fields", "line", "words"), MALFORMED)
def test_malformed_jsonl_names_line_and_field(tmp_path: Path, lines: list[str], fields: dict,
                                              line: int, words: list[str]) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(TaskFileError) as info:
        load_tasks({"source": "jsonl", "path": str(path), **fields})
    message = str(info.value)
    assert f"bad.jsonl:{line}:" in message and info.value.line == line
    for word in words:
        assert word in message, message
    assert isinstance(info.value, PonderError)
    # no json traceback chained behind it
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_invalid_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b'{"question": "q", "answer": "1"}\n{"question": "\xff", "answer": "2"}\n')
    with pytest.raises(TaskFileError, match=r"bin\.jsonl:2: not valid UTF-8"):
        load_tasks({"source": "jsonl", "path": str(path)})


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(TaskFileError, match=r"empty\.jsonl.*no problems"):
        load_tasks({"source": "jsonl", "path": str(path)})


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match=r"nothere\.jsonl: no such file"):
        load_tasks({"source": "jsonl", "path": str(tmp_path / "nothere.jsonl")})
    with pytest.raises(TaskFileError, match="not a regular file"):
        load_tasks({"source": "jsonl", "path": str(tmp_path)})


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"source": "csv", "path": "x"}, "source"),
        ({"source": "jsonl"}, "jsonl.path"),
        ({"source": "jsonl", "path": "x", "answer_format": "latex"}, "jsonl.answer_format"),
        ({"source": "jsonl", "path": "x", "limit": 0}, "jsonl.limit"),
        ({"source": "jsonl", "path": "x", "colour": "red"}, "jsonl.colour"),
    ],
)
def test_bad_task_configs_are_config_errors(config: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_tasks(config)
    assert info.value.field == field


def test_taskset_rejects_problems_without_golds() -> None:
    with pytest.raises(ConfigError):
        TaskSet([Problem("a", "q")], {}, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rows", "fields", "ids"), [
    # no id_field: a line's `id` is its id when it has one (string or integer) ...
    ([{"id": "p-7", "question": "q", "answer": "1"}, {"id": 12, "question": "r", "answer": "2"}], {}, ["p-7", "12"]),
    # ... else (missing or null) '<file stem>-<line number>'
    ([{"question": "q", "answer": "1"}, {"id": None, "question": "r", "answer": "2"},
      {"id": "own", "question": "s", "answer": "3"}], {}, ["ids-1", "ids-2", "own"]),
    # an id_field names another field, and `id` is then ignored
    ([{"id": "x", "key": "k1", "question": "q", "answer": "1"}], {"id_field": "key"}, ["k1"]),
])
def test_jsonl_ids_come_from_the_id_field_when_present(tmp_path: Path, rows: list[dict], fields: dict,
                                                       ids: list[str]) -> None:
    tasks = load_tasks({"source": "jsonl", "path": str(write_jsonl(tmp_path / "ids.jsonl", rows)), **fields})
    assert [p.id for p in tasks.problems] == ids
    assert tasks.verify(ids[0], "The answer is 1.").status is VerdictStatus.CORRECT


@pytest.mark.parametrize(("lines", "words"), [
    (['{"id": "a", "question": "q", "answer": "1"}', '{"id": "a", "question": "r", "answer": "2"}'],
     ["'id'", "duplicate", "line 1"]),
    (['{"id": 1.5, "question": "q", "answer": "1"}'], ["'id'", "strings or integers"]),
    (['{"id": "ids-2", "question": "q", "answer": "1"}', '{"question": "r", "answer": "2"}'],
     ["duplicate", "line 1"]),  # a line-number id that a given id already took
])
def test_jsonl_ids_without_id_field_are_still_checked(tmp_path: Path, lines: list[str], words: list[str]) -> None:
    with pytest.raises(TaskFileError) as info:
        load_tasks({"source": "jsonl", "path": str(write_jsonl(tmp_path / "ids.jsonl", lines))})
    for word in words:
        assert word in str(info.value), str(info.value)
