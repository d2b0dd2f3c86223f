"""ReST-MCTS* on scripted trees: presets, UCT with the unvisited bonus, roll-forward mixing,
visit-weighted backup and the end gate (spec 02 §3-§5), with hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from search.algorithms import RestMctsConfig, parse_algorithm_config, run_search
from search.aggregate import end_leaves
from search.protocols import ConfigError, EngineFault
from search.selection import uct_score
from search_fakes import Cand, ScriptedPolicy, ScriptedRewardModel, chat_prompt, make_ctx

ROOT = [Cand("A.\n\n"), Cand("B ANSWER:4\n\n"), Cand("C.\n\n")]
SCORES = {"A.\n\n": 0.3, "B ANSWER:4\n\n": 0.6, "C.\n\n": 0.2, "B1 ANSWER:4": 0.9, "A1 ANSWER:5": 0.4}


def script(steps: tuple[str, ...]) -> list[Cand]:
    if not steps:
        return ROOT
    if steps[-1].startswith("B"):
        return [Cand("B1 ANSWER:4", finish="eos")]
    return [Cand("A1 ANSWER:5", finish="eos")]


def config(**kw) -> RestMctsConfig:
    base = {"num_iterations": 1, "roll_forward_steps": 1, "alpha": 0.5, "branch": 3, "unvisited_bonus": 1.0, "c": 0.7}
    return RestMctsConfig(**{**base, **kw})


def test_presets_are_the_three_columns_of_spec_02_section_4():
    task, ev, data = RestMctsConfig(), RestMctsConfig(preset="evaluate"), RestMctsConfig(preset="data")
    assert (task.c, task.roll_forward_steps, task.end_gate, task.unvisited_bonus, task.mode) == (0.7, 3, 0.9, 1.0, "eval")
    assert (ev.num_iterations, ev.c, ev.roll_forward_steps, ev.end_gate, ev.unvisited_bonus) == (100, 0.4, 2, 0.9, 0.8)
    assert (data.num_iterations, data.c, data.roll_forward_steps, data.end_gate, data.unvisited_bonus, data.mode) == (
        50, 0.5, 1, 0.8, 0.9, "data")
    for cfg in (task, ev, data):
        assert (cfg.branch, cfg.alpha, cfg.roll_branch, cfg.roll_policy) == (3, 0.5, 1, "greedy")
    assert RestMctsConfig(preset="data", c=0.1).c == 0.1  # an explicit field wins
    parsed = parse_algorithm_config({"algorithm": "rest_mcts", "preset": "data"})
    assert isinstance(parsed, RestMctsConfig) and parsed.mode == "data"
    with pytest.raises(ConfigError, match="preset"):
        parse_algorithm_config({"algorithm": "rest_mcts", "preset": "nope"})


def test_uct_unvisited_child_scores_its_value_plus_inf():
    """spec 02 §3 Selection: V + INF when unvisited, V + C sqrt(2 ln N / n) otherwise."""
    assert uct_score(0.3, 0, 5, 0.7, unvisited_bonus=1.0) == pytest.approx(1.3)
    assert uct_score(0.3, 0, 5, 0.7) == math.inf
    assert uct_score(0.5, 2, 4, 0.7) == pytest.approx(0.5 + 0.7 * math.sqrt(2 * math.log(4) / 2))


async def test_first_iteration_rolls_the_best_child_and_mixes_its_value():
    """spec 02 §3: expand b = 3 children valued by the PRM; the UCT-best (unvisited: V + INF,
    so the highest V) rolls one step forward; V = (1 - a) V + a max(seen); visit-weighted
    backup makes the root's V the rolled child's (spec 02 §9)."""
    ctx = make_ctx(script, reward_model=ScriptedRewardModel(SCORES))
    result = await run_search(ctx, config())
    tree = ctx.tree
    a, b, c = (tree.nodes[i] for i in tree.nodes[0].children)
    assert [n.first_value for n in (a, b, c)] == [0.3, 0.6, 0.2]
    assert b.scores["roll_forward"] == 0.9
    assert b.visits == 1 and b.value == pytest.approx(0.5 * 0.6 + 0.5 * 0.9)  # 0.75
    assert a.visits == c.visits == 0  # not rolled: no visit, V = initial value
    assert tree.nodes[0].visits == 1 and tree.nodes[0].value == pytest.approx(0.75)
    assert len(tree) == 4  # the rolled step is not added to the tree
    assert result.extra["iterations"] == 1 and result.usage.calls == 2


async def test_second_iteration_prefers_an_unvisited_sibling_by_inf():
    """spec 02 §3: after one iteration ln N(root) = 0, so B scores 0.75 while A scores 0.3 + 1.0."""
    ctx = make_ctx(script, reward_model=ScriptedRewardModel(SCORES))
    await run_search(ctx, config(num_iterations=2))
    a = ctx.tree.nodes[ctx.tree.nodes[0].children[0]]
    assert a.children, "A was selected and expanded"
    a1 = ctx.tree.nodes[a.children[0]]
    assert a1.terminal and a1.visits == 1 and a1.value == pytest.approx(0.4)  # terminal: nothing rolled
    # root: visit-weighted over visited children B (1 visit, 0.75) and A (1 visit, 0.4)
    assert ctx.tree.nodes[0].value == pytest.approx((0.75 + 0.4) / 2)


async def test_eval_mode_stops_at_the_first_selected_node_over_the_end_gate():
    """spec 02 §3 / §5: eval mode returns the first selected node with V >= end_gate."""
    scores = {**SCORES, "B ANSWER:4\n\n": 0.95, "B1 ANSWER:4": 0.95}
    ctx = make_ctx(script, reward_model=ScriptedRewardModel(scores))
    result = await run_search(ctx, config(num_iterations=10, unvisited_bonus=0.0, end_gate=0.9))
    b = ctx.tree.nodes[0].children[1]
    assert result.extra["end_gate_stopped"] is True and result.extra["iterations"] == 2
    assert result.path[-1] == b and result.answer == "4"
    assert not ctx.tree.nodes[b].children  # never expanded


async def test_data_mode_closes_the_node_and_goes_on():
    """spec 02 §3 / §6: data mode marks the node <end> (Node.end), backs it up, never expands
    it, and runs to the iteration limit; it is an end leaf with its answer."""
    scores = {**SCORES, "B ANSWER:4\n\n": 0.95, "B1 ANSWER:4": 0.95}
    ctx = make_ctx(script, reward_model=ScriptedRewardModel(scores))
    result = await run_search(ctx, config(num_iterations=4, unvisited_bonus=0.0, end_gate=0.9, mode="data"))
    b = ctx.tree.nodes[ctx.tree.nodes[0].children[1]]
    assert b.end and not b.children and b.answer == "4"
    assert b.visits == 2 and b.value == pytest.approx(0.95)  # closing backs it up with its own V
    assert result.extra["closed"] == 1 and result.extra["end_gate_stopped"] is False
    assert result.extra["iterations"] == 4
    assert b.id in end_leaves(ctx.tree)
    assert any(ctx.tree.nodes[i].terminal for i in end_leaves(ctx.tree))  # the search went on


async def test_duplicates_merge_and_a_step_repeating_its_prefix_is_rejected():
    """spec 02 §2-§3: children are keyed by step text; a step already in the prefix is rejected."""
    def dup(steps):
        if not steps:
            return [Cand("A.\n\n"), Cand("A.\n\n"), Cand("B.\n\n")]
        return [Cand("A.\n\n"), Cand("Z ANSWER:1", finish="eos")]

    ctx = make_ctx(dup, reward_model=ScriptedRewardModel({"A.\n\n": 0.9, "B.\n\n": 0.1}))
    await run_search(ctx, config(num_iterations=2, roll_forward_steps=0, branch=3, unvisited_bonus=0.0, end_gate=1.0))
    root_texts = [ctx.tree.nodes[c].text for c in ctx.tree.nodes[0].children]
    assert root_texts == ["A.\n\n", "B.\n\n"]
    a = ctx.tree.nodes[ctx.tree.nodes[0].children[0]]
    repeats = [ctx.tree.nodes[c] for c in a.children if ctx.tree.nodes[c].text == "A.\n\n"]
    assert repeats and all(n.error == "repeats a step of its own prefix" for n in repeats)


async def test_answer_by_vote_sums_values_per_answer():
    """spec 02 §5: value-weighted voting over end leaves."""
    def three(steps):
        if not steps:
            return [Cand("x ANSWER:1", finish="eos"), Cand("y ANSWER:2", finish="eos"), Cand("z ANSWER:2", finish="eos")]
        raise KeyError(steps)

    scores = {"x ANSWER:1": 0.7, "y ANSWER:2": 0.4, "z ANSWER:2": 0.4}
    ctx = make_ctx(three, reward_model=ScriptedRewardModel(scores))
    voted = await run_search(ctx, config(answer_by="vote", end_gate=1.0))
    assert voted.answer == "2"  # 0.8 > 0.7
    ctx = make_ctx(three, reward_model=ScriptedRewardModel(scores))
    best = await run_search(ctx, config(answer_by="value", end_gate=1.0))
    assert best.answer == "1"


async def test_engine_fault_in_roll_forward_propagates_and_a_node_failure_is_skipped():
    fault = EngineFault("http://x", "gone")
    policy = ScriptedPolicy(script, chat_prompt("What is 2+2?"), fail_on=lambda s: bool(s), fault=fault)
    ctx = make_ctx(script, reward_model=ScriptedRewardModel(SCORES), policy=policy)
    with pytest.raises(EngineFault):
        await run_search(ctx, config())
    policy = ScriptedPolicy(script, chat_prompt("What is 2+2?"), fail_on=lambda s: bool(s))
    ctx = make_ctx(script, reward_model=ScriptedRewardModel(SCORES), policy=policy)
    await run_search(ctx, config())
    b = ctx.tree.nodes[ctx.tree.nodes[0].children[1]]
    assert b.visits == 1 and b.value == pytest.approx(0.6) and "roll_forward" not in b.scores


async def test_needs_a_value_source():
    ctx = make_ctx(script)
    with pytest.raises(ConfigError, match="reward"):
        await run_search(ctx, config())
    result = await run_search(make_ctx(script), config(value="prior"))
    assert result.extra["iterations"] == 1
