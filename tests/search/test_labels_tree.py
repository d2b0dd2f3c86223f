"""Label generators that read a finished tree plus the oracle's verdicts (no rollouts):
ReST-MCTS* (spec 02 §1, §6), ROVER's uniform-policy Q (spec 06 §6), AlphaMath's MCTS Q
(spec 05 §6). Every number below is computed by hand in the comments."""

from __future__ import annotations

import pytest
from search_fakes import encode, make_ctx

from search.aggregate import end_leaves
from search.labels.inputs import LabelInputs
from search.labels.records import StepLabel
from search.labels.rest import (
    RestPrmConfig,
    RestValueConfig,
    leaves_below,
    on_correct_route,
    quality_values,
    reasoning_distances,
    rest_prm_labels,
    rest_value_labels,
)
from search.labels.uniform_q import (
    AlphaMathConfig,
    RoverConfig,
    alphamath_labels,
    merge_duplicates,
    rover_labels,
)
from search.protocols import StepProposal, Verdict, VerdictStatus
from search.tree import Tree

C, W, U, T = VerdictStatus.CORRECT, VerdictStatus.INCORRECT, VerdictStatus.UNPARSEABLE, VerdictStatus.TIMEOUT
MODEL = "policy-x"


def add(tree: Tree, parent: int, text: str, *, terminal: bool = False, end: bool = False) -> int:
    """Appends a step (one fake token per character) and returns its id."""
    proposal = StepProposal(text, tuple(encode(text)), (-0.1,) * len(text), "eos" if terminal else "stop")
    node = tree.add_child(parent, proposal, terminal=terminal)
    node.end = end
    return node.id


def inputs_for(build, statuses: dict[int, VerdictStatus]) -> LabelInputs:
    """A context for problem "p7" whose tree ``build`` fills in, with the given leaf verdicts."""
    ctx = make_ctx({}, question="What is 2+2?", problem_id="p7")
    build(ctx.tree)
    return LabelInputs(ctx=ctx, model=MODEL, verdicts={i: Verdict(s) for i, s in statuses.items()})


def by_node(labels: list[StepLabel]) -> dict[int, StepLabel]:
    out = {lab.node_id: lab for lab in labels}
    assert len(out) == len(labels), "one label per node expected"
    return out


def rest_tree(tree: Tree) -> None:
    """0 ─┬─ 1 a ─┬─ 3 c ─┬─ 5 e (terminal, CORRECT)
          │       │       ├─ 11 k ── 12 l (terminal, INCORRECT)
          │       │       └─ 13 m ── 14 n (end gate, CORRECT)
          │       └─ 4 d (terminal, UNPARSEABLE)
          ├─ 2 b ─┬─ 6 f ── 7 g (terminal, INCORRECT)
          │       └─ 8 h (terminal, TIMEOUT: not checked)
          └─ 9 x ── 10 y (unexpanded: no end leaf below 9)
    """
    for parent, text, kind in [
        (0, "a\n\n", ""), (0, "b\n\n", ""), (1, "c\n\n", ""), (1, "d ANSWER:x", "t"), (3, "e ANSWER:4", "t"),
        (2, "f\n\n", ""), (6, "g ANSWER:5", "t"), (2, "h ANSWER:4", "t"), (0, "x\n\n", ""), (9, "y\n\n", ""),
        (3, "k\n\n", ""), (11, "l ANSWER:5", "t"), (3, "m\n\n", ""), (13, "n ANSWER:4\n\n", "e"),
    ]:
        add(tree, parent, text, terminal=kind == "t", end=kind == "e")


REST_VERDICTS = {5: C, 12: W, 14: C, 4: U, 7: W, 8: T}


def test_rest_tree_matches_end_leaves():
    """The hand-built tree's end leaves are exactly the verdict keys (spec 02 §5: unexpanded and
    terminal or ``<end>``)."""
    inputs = inputs_for(rest_tree, REST_VERDICTS)
    assert sorted(end_leaves(inputs.ctx.tree)) == sorted(REST_VERDICTS)


def test_reasoning_distances_spec02_s6():
    """Spec 02 §6 steps 2-4, code convention min_steps_to_correct = m + 1."""
    tree = Tree()
    rest_tree(tree)
    correct = {5: True, 12: False, 14: True, 4: False, 7: False}  # 8 timed out: left out
    # Step 3, correct leaves up: 5 -> 1, 3 -> 2, 1 -> 3, 0 -> 4; 14 -> 1, 13 -> 2, 3 -> min(2, 1 + 1) = 2.
    # Step 4, incorrect leaves inherit the nearest known ancestor's distance, as do the nodes between:
    #   4 under 1 (3) -> 3;  12 and 11 under 3 (2) -> 2;  7, 6 and 2 under the root (4) -> 4.
    # 8 (timeout) and the branch 9 - 10 (no end leaf) stay unknown.
    assert reasoning_distances(tree, correct) == {
        0: 4, 1: 3, 3: 2, 5: 1, 13: 2, 14: 1, 4: 3, 11: 2, 12: 2, 2: 4, 6: 4, 7: 4,
    }
    assert on_correct_route(tree, correct) == {0, 1, 3, 5, 13, 14}
    # Nothing correct: no distance at all (the code's 1024 everywhere).
    assert reasoning_distances(tree, {5: False, 14: False}) == {}


def test_quality_values_recurrence_spec02_s1():
    """Spec 02 §1: w_k = (1 - v_{k-1}) / (m_k + 1) * (±1), v_k = max(v_{k-1} + w_k, 0), v_0 = 0."""
    tree = Tree()
    rest_tree(tree)
    correct = {5: True, 12: False, 14: True, 4: False, 7: False}
    dist = reasoning_distances(tree, correct)
    values = quality_values(tree, dist, on_correct_route(tree, correct))
    expected = {
        0: 0.0,
        1: 1 / 3,   # m=2, +: 0 + (1 - 0) / 3
        3: 2 / 3,   # m=1, +: 1/3 + (2/3) / 2
        5: 1.0,     # m=0, +: 2/3 + (1/3) / 1 = 1 exactly
        13: 5 / 6,  # m=1, +: 2/3 + (1/3) / 2
        14: 1.0,    # m=0, +: 5/6 + (1/6) / 1
        4: 1 / 9,   # m=2, -: 1/3 - (2/3) / 3
        11: 1 / 2,  # m=1, -: 2/3 - (1/3) / 2
        12: 1 / 4,  # m=1, -: 1/2 - (1/2) / 2
        2: 0.0,     # m=3, -: max(0 - 1/4, 0)
        6: 0.0,     # m=3, -: max(0 - 1/4, 0)
        7: 0.0,
    }
    assert values == pytest.approx(expected)
    assert values[5] == 1.0 and values[14] == 1.0  # a correct terminal gets exactly 1


async def test_rest_value_labels_spec02_s6():
    """Spec 02 §6 step 5: one label per node with a known distance (v, he, m_k); the branch
    without any checked end leaf (9 - 10) and the timed-out leaf 8 are excluded."""
    labels = await rest_value_labels(inputs_for(rest_tree, REST_VERDICTS), RestValueConfig(generator="rest_value"))
    got = by_node(labels)
    assert [lab.node_id for lab in labels] == [1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14]
    assert {i: lab.value for i, lab in got.items()} == pytest.approx(
        {1: 1 / 3, 2: 0.0, 3: 2 / 3, 4: 1 / 9, 5: 1.0, 6: 0.0, 7: 0.0, 11: 0.5, 12: 0.25, 13: 5 / 6, 14: 1.0}
    )
    assert {i for i, lab in got.items() if lab.label} == {1, 3, 5, 13, 14}
    assert {i: lab.extra["m_k"] for i, lab in got.items()} == {
        1: 2, 2: 3, 3: 1, 4: 2, 5: 0, 6: 3, 7: 3, 11: 1, 12: 1, 13: 1, 14: 0,
    }
    assert got[12].extra["min_steps_to_correct"] == 2 and got[12].extra["he"] == 0 and got[3].extra["he"] == 1
    # The leaves that decided: correct ones below an on-route node (nearest first: 5 at depth 3,
    # then 14 at depth 4); the incorrect ones below an off-route node (8 timed out, not used).
    assert got[3].verdicts == ["correct", "correct"] and got[3].extra["leaf_ids"] == [5, 14]
    assert got[2].verdicts == ["incorrect"] and got[2].extra["leaf_ids"] == [7]
    assert got[4].verdicts == ["unparseable"]
    # Provenance of node 12 (a -> c -> k -> l).
    lab = got[12]
    assert (lab.problem_id, lab.question, lab.model) == ("p7", "What is 2+2?", MODEL)
    assert (lab.generator, lab.mode, lab.rollouts) == ("rest_value", "inferred", 0)
    assert lab.prefix == ["a\n\n", "c\n\n", "k\n\n"]
    assert lab.step == "l ANSWER:5"
    assert (lab.depth, lab.step_tokens) == (4, 10)


async def test_rest_labels_need_a_correct_leaf_spec02_s6():
    """Spec 02 §6 step 5: value samples only when at least one leaf was correct (the PRM
    variant is gated the same way in the reference code)."""
    wrong = {5: W, 12: W, 14: W, 4: U, 7: W, 8: T}
    assert await rest_value_labels(inputs_for(rest_tree, wrong), RestValueConfig()) == []
    assert await rest_prm_labels(inputs_for(rest_tree, wrong), RestPrmConfig()) == []


async def test_rest_prm_labels_spec02_s6():
    """Spec 02 §6 PRM variant: every node on a path to a checked end leaf gets he = max over its
    on-route children (1 iff a correct leaf is below), value float(he)."""
    def with_lone_wrong_branch(tree: Tree) -> None:
        rest_tree(tree)
        add(tree, 9, "z ANSWER:7", terminal=True)  # 15: puts 9 on a route (to an incorrect leaf)

    labels = await rest_prm_labels(inputs_for(with_lone_wrong_branch, {**REST_VERDICTS, 15: W}), RestPrmConfig())
    got = by_node(labels)
    # Routes: 1, 3, 5, 13, 14 reach a correct leaf (he 1); 2, 6, 7 (to 7), 4, 11, 12, 9, 15 only
    # incorrect ones (he 0). 10 (unexpanded) and 8 (timed out) are on no checked route.
    assert sorted(got) == [1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 14, 15]
    assert {i for i, lab in got.items() if lab.label} == {1, 3, 5, 13, 14}
    assert all(lab.value == float(lab.label) and lab.extra["he"] == int(lab.label) for lab in labels)
    assert got[9].verdicts == ["incorrect"] and got[9].extra["leaf_ids"] == [15]
    assert got[1].extra["leaf_ids"] == [5, 14]
    lab = got[14]  # an end-gated leaf: a -> c -> m -> n
    assert (lab.generator, lab.mode, lab.problem_id, lab.model) == ("rest_prm", "inferred", "p7", MODEL)
    assert (lab.prefix, lab.step, lab.depth, lab.step_tokens) == (["a\n\n", "c\n\n", "m\n\n"], "n ANSWER:4\n\n", 4, 12)


def rover_tree(tree: Tree) -> None:
    """0 ─┬─ 1 a ─┬─ 3 c (CORRECT)
          │       ├─ 4 d (INCORRECT) ┐ same text: one action
          │       ├─ 5 d (INCORRECT) ┘
          │       └─ 16 t (TIMEOUT: unknown)
          ├─ 2 b ─┬─ 6 e ── 8 g (CORRECT)
          │       └─ 7 f (unexpanded non-end leaf: unknown)
          ├─ 9 b ─┬─ 10 e ── 11 i (INCORRECT)   9 merges with 2, 10 with 6
          │       └─ 12 h (INCORRECT)
          ├─ 13 z (errored: unknown)
          └─ 14 w ── 15 v (unexpanded: unknown subtree)
    """
    for parent, text, kind in [
        (0, "a\n\n", ""), (0, "b\n\n", ""), (1, "c", "t"), (1, "d", "t"), (1, "d", "t"), (2, "e\n\n", ""),
        (2, "f\n\n", ""), (6, "g", "t"), (0, "b\n\n", ""), (9, "e\n\n", ""), (10, "i", "t"), (9, "h", "t"),
        (0, "z", "x"), (0, "w\n\n", ""), (14, "v\n\n", ""), (1, "t", "t"),
    ]:
        node_id = add(tree, parent, text, terminal=kind == "t")
        if kind == "x":
            tree.nodes[node_id].error = "the policy returned an errored proposal"


ROVER_VERDICTS = {3: C, 4: W, 5: W, 8: C, 11: W, 12: W, 16: T}


def test_merge_duplicates_spec06_s6():
    """Spec 06 §6: duplicate step texts merge (recursively) before the mean."""
    tree = Tree()
    rover_tree(tree)
    merged = merge_duplicates(tree)
    assert merged.state[5] == 4 and merged.state[9] == 2 and merged.state[10] == 6 and merged.state[11] == 11
    assert merged.copies[2] == [2, 9] and merged.children[2] == {6, 7, 12}


def test_leaves_below_nearest_first():
    """The leaves recorded on a label are the nearest ones (shallowest, then lowest id), capped."""
    tree = Tree()
    rover_tree(tree)
    below = leaves_below(tree, [8, 11, 12])
    assert below[0] == [12, 8, 11]  # 12 at depth 2 before 8 and 11 at depth 3
    assert below[9] == [12, 11] and below[2] == [8] and 1 not in below
    assert leaves_below(tree, [8, 11, 12], cap=2)[0] == [12, 8]


async def test_rover_uniform_q_spec06_s6():
    """Spec 06 §6: terminal Q = 1 / 0, V(s) = mean over distinct expanded children, Q(s, c) = V(c),
    truncated subtrees unknown (not 0), label = Q > 0."""
    inputs = inputs_for(rover_tree, ROVER_VERDICTS)
    assert sorted(end_leaves(inputs.ctx.tree)) == sorted(ROVER_VERDICTS)
    got = by_node(await rover_labels(inputs, RoverConfig(generator="rover")))
    # state e (6 + 10): children g = 1, i = 0 -> 1/2
    # state b (2 + 9):  children e = 1/2, h = 0, f unknown (left out) -> (1/2 + 0) / 2 = 1/4
    # state a (1):      children c = 1, d (4 + 5, counted once) = 0, t unknown -> (1 + 0) / 2 = 1/2
    #                   (without merging it would be (1 + 0 + 0) / 3 = 1/3)
    expected = {1: 0.5, 2: 0.25, 3: 1.0, 4: 0.0, 5: 0.0, 6: 0.5, 7: None, 8: 1.0, 9: 0.25, 10: 0.5,
                11: 0.0, 12: 0.0, 13: None, 14: None, 15: None, 16: None}
    assert {i: lab.value for i, lab in got.items()} == expected
    assert {i: lab.label for i, lab in got.items()} == {
        i: (None if v is None else v > 0) for i, v in expected.items()
    }
    assert got[2].extra == got[9].extra == {"state": 2, "copies": 2, "candidates": 2}  # e, h (f unknown)
    assert got[1].extra["candidates"] == 2 and got[5].extra == {"state": 4, "copies": 2, "candidates": 0}
    # Leaves below either copy of b, nearest first: 12 (depth 2), then 8 and 11 (depth 3).
    assert got[9].verdicts == ["incorrect", "correct", "incorrect"]
    assert got[7].verdicts == [] and got[16].verdicts == []  # timed out: not checked
    lab = got[10]
    assert (lab.generator, lab.mode, lab.problem_id, lab.question, lab.model) == (
        "rover", "uniform_q", "p7", "What is 2+2?", MODEL)
    assert (lab.prefix, lab.step, lab.depth, lab.step_tokens) == (["b\n\n"], "e\n\n", 2, 3)


async def test_rover_mean_centring_spec06_s6():
    """Spec 06 §6 mean-centring: advantage = Q - mean reward of the problem's leaves, kept in
    extra (it leaves [0, 1]); value stays Q."""
    got = by_node(await rover_labels(inputs_for(rover_tree, ROVER_VERDICTS), RoverConfig(mean_center=True)))
    # Checked leaves 3, 4, 5, 8, 11, 12 (16 timed out): rewards 1, 0, 0, 1, 0, 0 -> b = 2/6 = 1/3.
    assert got[1].extra["baseline"] == pytest.approx(1 / 3)
    assert got[1].extra["advantage"] == pytest.approx(1 / 2 - 1 / 3)  # 1/6
    assert got[4].extra["advantage"] == pytest.approx(-1 / 3) and got[4].value == 0.0
    assert "advantage" not in got[7].extra  # unknown stays unknown
    plain = by_node(await rover_labels(inputs_for(rover_tree, ROVER_VERDICTS), RoverConfig()))
    assert "advantage" not in plain[1].extra


def alphamath_tree(tree: Tree) -> None:
    """0 ─┬─ 1 a (N=3, W=2.1) ─┬─ 2 b (terminal, CORRECT)
          │                    └─ 3 c (N=2, W=0.8) ── 4 d (terminal, N=1, W=0.9, INCORRECT)
          ├─ 5 e (never visited) ── 6 f (terminal, CORRECT)
          └─ 7 g (terminal, TIMEOUT)
    """
    for parent, text, kind in [(0, "a\n\n", ""), (1, "b", "t"), (1, "c\n\n", ""), (3, "d", "t"),
                               (0, "e\n\n", ""), (5, "f", "t"), (0, "g", "t")]:
        add(tree, parent, text, terminal=kind == "t")
    for node_id, visits, value_sum in [(0, 4, 2.9), (1, 3, 2.1), (2, 1, 1.0), (3, 2, 0.8), (4, 1, 0.9)]:
        tree.nodes[node_id].visits, tree.nodes[node_id].value_sum = visits, value_sum


async def test_alphamath_path_targets_spec05_s6():
    """Spec 05 §6: one example per root-to-terminal path, correct and incorrect; intermediate
    steps carry the node's MCTS Q, the last step the terminal reward (+1 / -1 -> 1 / 0)."""
    labels = await alphamath_labels(inputs_for(alphamath_tree, {2: C, 4: W, 6: C, 7: T}), AlphaMathConfig())
    rows = [(lab.extra["leaf_id"], lab.node_id, lab.label, lab.extra["source"]) for lab in labels]
    values = [lab.value for lab in labels]
    assert rows == [
        (2, 1, True, "mcts_q"),
        (2, 2, True, "terminal_reward"),
        (4, 1, None, "mcts_q"),  # same node, the incorrect path's example
        (4, 3, None, "mcts_q"),
        (4, 4, False, "terminal_reward"),
        (6, 5, True, "mcts_q"),
        (6, 6, True, "terminal_reward"),
    ]  # the timed-out leaf 7 gives no path
    assert values == pytest.approx([
        0.7,   # node 1: Q = W / N = 2.1 / 3
        1.0,   # correct: +1 -> 1
        0.7,   # node 1 again
        0.4,   # node 3: 0.8 / 2
        0.0,   # incorrect: -1 -> 0 (not the tree's 0.9 / 1)
        None,  # node 5 never visited: Q unknown
        1.0,
    ])
    pm1 = [lab.extra["target_pm1"] for lab in labels]
    assert pm1 == pytest.approx([0.4, 1.0, 0.4, -0.2, -1.0, None, 1.0])  # 2 * value - 1
    assert [lab.verdicts for lab in labels[2:5]] == [["incorrect"]] * 3
    lab = labels[4]
    assert (lab.generator, lab.mode, lab.problem_id, lab.question, lab.model) == (
        "alphamath", "mcts_q", "p7", "What is 2+2?", MODEL)
    assert (lab.node_id, lab.prefix, lab.step, lab.depth, lab.step_tokens) == (4, ["a\n\n", "c\n\n"], "d", 3, 1)
    assert lab.extra["visits"] == 1
