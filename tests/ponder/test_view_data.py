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
from view_run import record_prove_run, record_run


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


@pytest.fixture(scope="module")
def prove_run(tmp_path_factory):
    return record_prove_run(tmp_path_factory.mktemp("view-prove") / "prove")


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


def test_wall_time_is_read_from_either_row_shape(tmp_path):
    """`ponder run` rows keep the wall time in `usage`; `ponder prove` rows kept it at the top
    level and showed 0 (issue 24 §5). Either shows, `usage` first, and both add to the totals."""
    from ponder.rundir import RunDir

    rows = [{"id": "top", "status": "proved", "correct": True, "usage": {"generated_tokens": 5, "calls": 1},
             "wall_seconds": 1.25, "proof": ["ring_nf", "reflexivity"]},
            {"id": "in-usage", "status": "unproved", "correct": False,
             "usage": {"generated_tokens": 3, "calls": 1, "wall_seconds": 2.5}},
            {"id": "both", "status": "unproved", "correct": False, "usage": {"wall_seconds": 0.5}, "wall_seconds": 9.0},
            {"id": "neither", "status": "error", "correct": False, "error": "boom", "usage": {}}]
    with RunDir(tmp_path / "run") as rd:
        rd.write_config({"name": "walls", "search": {"algorithm": "bfs_prover"}})
        for row in rows:
            rd.record(row, None)
    (run,) = read_view(tmp_path / "run")[0]["runs"]
    assert [p["wall"] for p in run["problems"]] == [1.25, 2.5, 0.5, 0.0]
    assert (run["totals"]["wall_seconds_sum"], run["totals"]["wall_seconds_max"]) == (4.25, 2.5)
    assert run["mode"] == "prove"  # a prover run's config has no mode; its algorithm says it
    assert run["problems"][0]["answer"] == "ring_nf. reflexivity."  # a prover row's proof, as its answer


def test_a_prove_run_shows_its_wall_times_and_each_nodes_proof_state(prove_run):
    """A real `ponder prove` run dir (rewrite environment, scripted tactics): every problem's wall
    time is its row's, and the trace's per-node proof states and attempt roots (kept in `extra`)
    are node columns, so an attempt root, whose own text is empty, shows the goal it starts from."""
    results = {r["id"]: r for r in map(json.loads, (prove_run / "results.jsonl").read_text().splitlines())}
    index, trees = read_view(prove_run)
    (run,) = index["runs"]
    assert run["mode"] == "prove" and len(run["problems"]) == 2
    for problem in run["problems"]:
        row = results[problem["id"]]
        wall = (row.get("usage") or {}).get("wall_seconds", row.get("wall_seconds"))
        assert problem["wall"] == pytest.approx(wall, abs=1e-4) and wall > 0
        trace = _trace(prove_run, problem["id"])
        tree = trees[problem["tree"]]
        assert tree["question"] == trace["extra"]["theorem"]["statement"]
        assert "states" not in tree["extra"] and "states" in trace["extra"]
        assert tree["cols"]["state"] == [trace["extra"]["states"].get(str(i)) for i in range(tree["n"])]
        roots = {a["node_offset"]: a for a in trace["extra"]["attempts"] if "node_offset" in a}
        assert len(roots) >= 2
        for i, attempt in roots.items():
            assert tree["cols"]["text"][i] == "\n".join(attempt["prefix"])
            assert tree["cols"]["state"][i] == attempt["root"]  # the goal the attempt starts from
            assert tree["cols"]["attempt"][i] == f"agent {attempt['agent']} · step {attempt['step']} · {attempt['status']}"
        assert [i for i, a in enumerate(tree["cols"]["attempt"]) if a] == sorted(roots)
    assert run["totals"]["wall_seconds_sum"] == pytest.approx(sum(p["wall"] for p in run["problems"]), abs=0.02)
