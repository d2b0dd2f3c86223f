"""`ponder view`'s data: recorded run dirs (scripted engine) -> the view model; the page's
JSON blocks; errors. No browser (issue 14 §1)."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.view import ViewError, read_view, write_view
from ponder.view.data import find_runs, tree_columns
from ponder.view.page import render_html
from view_run import record_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("view-runs")
    mp = pytest.MonkeyPatch()
    try:
        record_run(root / "bench" / "solve", mp)
        record_run(root / "bench" / "label", mp, mode="label")
    finally:
        mp.undo()
    return root / "bench"


def _trace(run_dir, pid):
    return json.loads((run_dir / "traces" / f"{pid}.json").read_text())


def test_run_page_data_counts_verdicts_totals_and_golds(runs):
    index, trees = read_view(runs / "solve")
    (run,) = index["runs"]
    by_id = {p["id"]: p for p in run["problems"]}
    assert {k: p["verdict"] for k, p in by_id.items()} == {
        "right": "correct", "also": "correct", "wrong": "incorrect", "crashes": "errored"}
    t = run["totals"]
    assert (t["problems"], t["errors"], t["accuracy"]) == (3, 1, pytest.approx(2 / 3, abs=1e-4))
    rows = [json.loads(line) for line in (runs / "solve" / "results.jsonl").read_text().splitlines()]
    assert t["generated_tokens"] == sum(r["usage"]["generated_tokens"] for r in rows)
    assert t["cached_share"] == pytest.approx(sum(r["usage"]["cached_prompt_tokens"] for r in rows)
                                              / sum(r["usage"]["prompt_tokens"] for r in rows), abs=1e-4)
    # golds: read from the task file after the search, only for problems whose search ended
    assert (by_id["right"]["gold"], by_id["wrong"]["gold"]) == ("42", "7")
    assert "gold" not in by_id["crashes"] and by_id["crashes"]["tree"] is None
    assert "scripted crash" in by_id["crashes"]["error"]
    assert set(trees) == {p["tree"] for p in run["problems"] if p["tree"]}
    assert read_view(runs / "solve", with_gold=False)[0]["runs"][0]["gold_shown"] is False


def test_tree_columns_hold_every_node_field_of_the_trace(runs):
    index, trees = read_view(runs / "solve")
    problem = next(p for p in index["runs"][0]["problems"] if p["id"] == "right")
    tree, trace = trees[problem["tree"]], _trace(runs / "solve", "right")
    assert tree["n"] == len(trace["nodes"]) == problem["nodes"]
    assert tree["path"] == trace["path"] and problem["path_depth"] == len(trace["path"]) - 1
    assert tree["tokens"] == [len(n["token_ids"]) for n in trace["nodes"]]
    assert tree["cols"]["text"] == [n["text"] for n in trace["nodes"]]
    assert tree["cols"]["visits"] == [n["visits"] for n in trace["nodes"]]
    (source,) = {k for n in trace["nodes"] for k in n["scores"]}
    assert tree["scores"][source] == [n["scores"].get(source) for n in trace["nodes"]]
    assert "token_ids" not in tree["cols"] and "children" not in tree["cols"]


def test_fields_of_other_node_kinds_pass_through():
    """Node kinds and fields the schema gains later (answer-nodes, segments, value histories) are
    columns like the others; nodes without them hold None."""
    trace = {"question": "q", "path": [0, 1], "nodes": [
        {"id": 0, "parent": None, "text": "", "token_ids": [], "scores": {}},
        {"id": 1, "parent": 0, "text": "A", "token_ids": [1, 2], "scores": {"self_eval": 0.25},
         "kind": "answer", "value_history": [0.1, 0.5, 0.375], "prompt_ids": [5, 6, 7],
         "info": {"role": "refine", "q_history": [95.0, 94.25]}}]}
    tree = tree_columns(trace)
    assert tree["cols"]["kind"] == [None, "answer"]
    assert tree["cols"]["value_history"] == [None, [0.1, 0.5, 0.375]]
    assert tree["cols"]["info.role"] == [None, "refine"] and tree["cols"]["info.q_history"] == [None, [95.0, 94.25]]
    assert tree["cols"]["prompt_ids (count)"] == [None, 3] and "prompt_ids" not in tree["cols"]
    assert tree["scores"] == {"self_eval": [None, 0.25]} and tree["tokens"] == [0, 2]


def test_label_run_attaches_labels_to_their_nodes(runs):
    index, trees = read_view(runs / "label")
    (run,) = index["runs"]
    assert run["mode"] == "label" and run["totals"]["labels"] > 0
    for problem in run["problems"]:
        lines = [json.loads(x) for x in (runs / "label" / "labels" / f"{problem['id']}.jsonl").read_text().splitlines()]
        tree = trees[problem["tree"]]
        on_tree = [x for x in lines if x["node_id"] is not None]
        assert sum(len(v) for v in tree["labels"].values()) == len(on_tree) > 0
        assert len(tree["loose_labels"]) == len(lines) - len(on_tree)
        first = on_tree[0]
        (attached,) = [x for x in tree["labels"][str(first["node_id"])] if x["value"] == first["value"]][:1]
        assert attached["generator"] == "math_shepherd" and attached["rollouts"] == first["rollouts"] == 2


def test_a_folder_of_runs_is_one_view_of_several(runs):
    assert find_runs(runs) == [runs / "label", runs / "solve"]
    index, trees = read_view(runs)
    assert [r["label"] for r in index["runs"]] == ["label", "solve"]
    keys = [p["tree"] for r in index["runs"] for p in r["problems"] if p["tree"]]
    assert len(keys) == len(set(keys)) == len(trees) == 6


def test_page_is_self_contained_and_its_json_blocks_survive_html(tmp_path):
    nasty = "</script><script>alert(1)</script><!-- x"
    trace = {"question": nasty, "path": [0], "nodes": [{"id": 0, "parent": None, "text": nasty, "token_ids": [],
                                                         "scores": {}}]}
    index = {"title": "t", "path": "/x", "runs": []}
    page = render_html(index, {"r0-0": tree_columns(trace)})
    assert "alert(1)</script>" not in page and "<!-- x" not in page
    block = re.search(r'<script type="application/json" id="tree-r0-0">(.*?)</script>', page, re.S).group(1)
    assert json.loads(block)["question"] == nasty
    assert not re.search(r'(src|href)="(https?:)?//', page), "nothing is fetched at view time"


def test_write_view_and_cli(runs, tmp_path):
    out = write_view(runs / "solve", tmp_path / "v.html", "wrong")
    assert json.loads(re.search(r'id="ponder-data">(.*?)</script>', out.read_text(), re.S).group(1))["start"] == {
        "run": 0, "p": "wrong"}
    with pytest.raises(ViewError, match="'nope'"):
        write_view(runs / "solve", tmp_path / "v.html", "nope")
    with pytest.raises(ViewError, match="not a run directory"):
        read_view(tmp_path)
    result = CliRunner().invoke(app, ["view", str(runs / "solve"), "--out", str(tmp_path / "cli.html")])
    assert result.exit_code == 0 and result.output.strip() == str((tmp_path / "cli.html").resolve())
    result = CliRunner().invoke(app, ["view", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such directory" in " ".join(result.output.split())


@pytest.mark.parametrize("source", ["reasoning_gym", "jsonl"])
def test_gold_text_is_the_answer_the_verifier_accepts(tmp_path, source):
    from ponder.view.data import gold_answers
    from verifiers.tasks import load_tasks

    if source == "jsonl":
        (tmp_path / "t.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n')
        config = {"source": "jsonl", "path": str(tmp_path / "t.jsonl")}
    else:
        config = {"source": "reasoning_gym", "name": "chain_sum", "size": 3, "seed": 1}
    tasks, notes = load_tasks(config), []
    golds = gold_answers({"tasks": config}, notes)
    assert notes == [] and set(golds) == {p.id for p in tasks.problems}
    for p in tasks.problems:
        gold = golds[p.id]
        assert tasks.verify(p.id, f"The answer is \\boxed{{{gold}}}.").correct, (p.id, gold)
