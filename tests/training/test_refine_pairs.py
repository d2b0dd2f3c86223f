"""MCTSr's DPO pairs from self-refine trees (spec 01 §10), with hand-computed structure rewards."""

import random

import pytest

from search.protocols import Problem, StepProposal, Usage
from search.trace import SearchResult
from search.tree import Tree
from training.export.refine_pairs import path_pairs, refine_pair_rows, structure_rewards


def refine_tree() -> Tree:
    """node 1 (root) -> 2 -> 3, 1 -> 4; node 5 a second root (the dummy)."""
    tree = Tree([1])
    for parent, text in ((0, "r ANSWER:3"), (1, "ANSWER:4"), (2, "ANSWER:5"), (1, "ANSWER:6"), (0, "I don't know.")):
        tree.add_child(parent, StepProposal(text, (len(text),), (), "eos"), terminal=False, prompt_ids=[1])
    return tree


def test_structure_rewards_by_hand():  # spec 01 §10
    tree = refine_tree()
    rewards = structure_rewards(tree, {2})
    # gold 1.0, its parent 0.9; the rootless-score root min * 0.9; off-path children parent * 0.45
    assert rewards == pytest.approx({2: 1.0, 1: 0.9, 5: 0.81, 3: 0.45, 4: 0.405})
    assert structure_rewards(tree, set()) == {}


def test_path_pairs_two_nodes_and_sampled_by_gap():  # spec 01 §10
    rewards = {3: 1.0, 2: 0.9, 1: 0.81}
    assert path_pairs([3, 1], rewards, random.Random(0)) == [(3, 1)]
    drawn = path_pairs([3, 2, 1], rewards, random.Random(0))
    assert len(drawn) == 9 // 2 and all(rewards[a] > rewards[b] for a, b in drawn)
    # gap weights .1, .19, .09: the widest pair (3, 1) is drawn most often over many draws
    many = [p for s in range(300) for p in path_pairs([3, 2, 1], rewards, random.Random(s))]
    share = many.count((3, 1)) / len(many)
    assert abs(share - 0.19 / 0.38) < 0.04


def trace_of(tree: Tree, algorithm: str = "mc_nest"):
    return SearchResult(None, [], tree, Usage(), algorithm).to_trace(Problem("p1", "Q?"))


def test_rows_with_gold_inside_a_path_and_format():  # spec 01 §10: extra gold removed from paths
    tree = refine_tree()
    gold = {"ANSWER:4", "ANSWER:5"}
    rows = refine_pair_rows([trace_of(tree)], lambda pid, text: text in gold).rows
    pairs = {(r["chosen"], r["rejected"]) for r in rows}
    assert pairs == {("ANSWER:4", "r ANSWER:3"), ("ANSWER:5", "r ANSWER:3")}
    assert set(rows[0]) == {"prompt", "chosen", "rejected", "margin", "problem_id"}
    assert rows[0]["prompt"] == "Q?\n\n" and rows[0]["margin"] == pytest.approx(0.1)


def test_step_search_traces_and_no_gold_give_no_rows():
    tree = refine_tree()
    assert refine_pair_rows([trace_of(tree, "mcts")], lambda pid, text: True).rows == []
    assert refine_pair_rows([trace_of(tree)], lambda pid, text: False).rows == []


def test_export_uses_the_recipe_for_self_refine_runs(tmp_path):
    from training.export import ExportConfig, build_rows
    from training.export.sources import RunData

    run = RunData(path=tmp_path, config={}, results={}, traces={"p1": trace_of(refine_tree())}, labels=[])
    rows, source = build_rows("pairs", run, ExportConfig(), lambda pid, text: text == "ANSWER:4")
    assert "MCTSr" in source and [(r["chosen"], r["rejected"]) for r in rows.rows] == [("ANSWER:4", "r ANSWER:3")]
