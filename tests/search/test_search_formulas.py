"""Pure pieces against hand-computed numbers, each naming its spec."""

import math

import pytest

from search.aggregate import best_terminal, majority_vote, vote_path, weighted_vote
from search.backup import max_backup, mean_backup, visit_weighted_backup
from search.evaluators import aggregate_step_scores
from search.protocols import StepProposal
from search.selection import (
    add_virtual_loss,
    bfs_priority,
    effective_stats,
    make_select_fn,
    puct_score,
    uct_score,
    x1_score,
)
from search.tree import Tree


def step(text: str, lp: float = -0.1, finish: str = "stop") -> StepProposal:
    return StepProposal(text, (1,) * 2, (lp, lp), finish)  # type: ignore[arg-type]


def test_uct_rest_mcts_star_spec02():
    # spec 02 §3: V + C * sqrt(2 ln N / n) = 0.5 + 0.7 * sqrt(2 ln 10 / 2)
    assert uct_score(0.5, 2, 10, 0.7) == pytest.approx(1.5621989905696025)
    assert uct_score(0.5, 0, 10, 0.7) == math.inf  # unvisited = +inf
    assert uct_score(0.3, 1, 1, 0.7) == pytest.approx(0.3)  # ln 1 = 0


def test_puct_alphamath_spec05():
    # spec 05 §3: Q + c * P * sqrt(N_parent) / (1 + N), P = exp(mean logprob) = exp(-0.5)
    assert puct_score(0.4, math.exp(-0.5), 2, 9, 1.25) == pytest.approx(1.1581633246407916)
    assert puct_score(0.0, 1.0, 0, 4, 1.5) == pytest.approx(3.0)


def test_x1_score_spec07():
    # spec 07 §2: norm(q) + sqrt(N_s - 1)/(1 + N) * (c1 + log((N_s + c2)/c2)), q in [-1, 1]
    assert x1_score(0.5, 1, 5) == pytest.approx(2.00025439466926)
    # ponder's values are in [0, 1]: norm(0.8) = 0.8
    assert x1_score(0.8, 2, 4, q_min=0.0, q_max=1.0) == pytest.approx(1.5218053393406359)
    assert x1_score(-1.0, 1, 1) == pytest.approx(0.0)  # N_s - 1 = 0: no exploration


def test_bfs_priority_spec04():
    # spec 04 §2: Σ per-step mean logprob / depth ** α; root pushed without the division
    assert bfs_priority([-0.2, -0.4, -0.3], 2.0) == pytest.approx(-0.1)
    assert bfs_priority([-0.2, -0.4, -0.3], 0.0) == pytest.approx(-0.9)
    assert bfs_priority([], 2.0) == 0.0


def chain_tree() -> Tree:
    tree = Tree([7])
    a = tree.add_child(0, step("a\n\n"), terminal=False)
    tree.add_child(a.id, step("b\n\n"), terminal=False)
    return tree


def test_mean_backup_alphamath_running_mean():
    tree = chain_tree()
    mean_backup(tree, 2, 0.6)
    mean_backup(tree, 2, 0.2)
    for node in tree:
        assert (node.visits, node.value) == (2, pytest.approx(0.4))


def test_max_backup_keeps_best():
    tree = chain_tree()
    max_backup(tree, 2, 0.6)
    max_backup(tree, 2, 0.2)
    max_backup(tree, 1, 0.7)
    assert (tree[2].visits, tree[2].value) == (2, pytest.approx(0.6))
    assert (tree[1].visits, tree[1].value) == (3, pytest.approx(0.7))
    assert (tree[0].visits, tree[0].value) == (3, pytest.approx(0.7))


def test_visit_weighted_backup_rest_mcts_star_spec02():
    # spec 02 §3: V(parent) = Σ_c N(c) V(c) / Σ_c N(c)
    tree = Tree()
    a = tree.add_child(0, step("a"), terminal=False).id
    c = tree.add_child(0, step("c"), terminal=False).id
    visit_weighted_backup(tree, a, 0.4)
    visit_weighted_backup(tree, a, 0.6)  # a: N=2, Q=0.5
    visit_weighted_backup(tree, c, 0.9)  # c: N=1, Q=0.9
    assert tree[0].visits == 3
    assert tree[0].value == pytest.approx((2 * 0.5 + 0.9) / 3)


def test_votes_and_ties():
    answers = ["x", "y", "y", "x", None]
    assert weighted_vote(answers, [0.9, 0.3, 0.4, 0.2, 1.0]) == "x"  # x: 1.1, y: 0.7
    assert majority_vote(["x", "y", "y"]) == "y"
    assert majority_vote(["x", "y"]) == "x"  # tie: first seen
    assert majority_vote([None, None]) is None


def test_vote_path_and_best_terminal():
    tree = Tree()
    for text, answer, terminal in [("1", "x", True), ("2", "y", True), ("3", "y", True), ("4", None, True), ("5", "z", False)]:
        node = tree.add_child(0, step(text), terminal=terminal)
        node.answer = answer
    weights = {1: 0.9, 2: 0.5, 3: 0.6, 4: 1.0}
    # y wins the PRM-weighted vote (1.1 > 0.9); the heaviest y holder is node 3
    assert vote_path(tree, [1, 2, 3, 4], [weights[i] for i in (1, 2, 3, 4)]) == 3
    assert best_terminal(tree, weights.get) == 1  # unanswered 4 and non-terminal 5 excluded


def test_prm_aggregation():
    assert aggregate_step_scores([0.9, 0.5, 0.8], "min") == 0.5
    assert aggregate_step_scores([0.9, 0.5, 0.8], "last") == 0.8
    assert aggregate_step_scores([0.9, 0.5, 0.8], "product") == pytest.approx(0.36)


def test_virtual_loss_steers_selection():
    tree = Tree()
    a = tree.add_child(0, step("a", lp=0.0), terminal=False).id
    b = tree.add_child(0, step("b", lp=0.0), terminal=False).id
    for i, v in ((a, 0.5), (b, 0.5)):
        mean_backup(tree, i, v)
    select = make_select_fn("puct", 1.25)
    assert select(tree, 0, [a, b]) == a  # tie -> earliest
    add_virtual_loss(tree, [0, a], 1)
    assert effective_stats(tree[a], 0.0) == (2, pytest.approx(0.25))
    assert select(tree, 0, [a, b]) == b
    add_virtual_loss(tree, [0, a], -1)
    assert tree[a].virtual_loss == 0 and tree[a].visits == 1
