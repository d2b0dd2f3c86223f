"""The beam family (cot, self-consistency, best-of-N, step beam, DVTS) and best-first."""

import pytest

from search.algorithms import (
    BestFirstConfig,
    BestOfNConfig,
    CotConfig,
    DvtsConfig,
    SelfConsistencyConfig,
    StepBeamConfig,
    run_search,
)
from search.protocols import ConfigError
from search_fakes import Cand, ScriptedRewardModel, make_ctx

CHAINS = {
    (): [Cand("s1\n\n"), Cand("s2\n\n"), Cand("s3\n\n")],
    ("s1\n\n",): [Cand("So ANSWER:5", finish="eos")],
    ("s2\n\n",): [Cand("Thus ANSWER:7", finish="eos")],
    ("s3\n\n",): [Cand("Also ANSWER:7", finish="eos")],
}


def texts(ctx, path):
    return [ctx.tree[i].text for i in path[1:]]


async def test_cot_is_greedy_until_terminal():
    ctx = make_ctx(CHAINS)
    result = await run_search(ctx, CotConfig())
    # One request for the whole solution, cut into steps afterwards (issue 8 §2).
    assert result.answer == "5" and texts(ctx, result.path) == ["s1\n\n", "So ANSWER:5"]
    [(_, sampling)] = ctx.policy.requests
    assert sampling.temperature == 0.0 and sampling.n == 1 and sampling.stop == ()
    assert sampling.max_tokens == ctx.steps.solution_tokens
    assert [ctx.tree[i].finish_reason for i in result.path[1:]] == ["stop", "eos"]
    assert result.algorithm == "cot" and result.config == {"algorithm": "cot"}
    assert result.usage.calls == 1 and result.usage.wall_seconds > 0


async def test_self_consistency_majority_vote():
    ctx = make_ctx(CHAINS)
    result = await run_search(ctx, SelfConsistencyConfig(num_samples=3))
    assert result.answer == "7" and texts(ctx, result.path) == ["s2\n\n", "Thus ANSWER:7"]
    assert ctx.policy.requests[0][1].n == 3  # all chains, whole, in one request
    assert len(ctx.policy.requests) == 1 and len(result.extra["finished"]) == 3
    assert all(len(ctx.tree.path(i)) == 3 for i in result.extra["finished"])  # root + two steps each


@pytest.mark.parametrize(("answer_by", "expected"), [("best", "5"), ("vote", "7")])
async def test_best_of_n(answer_by, expected):
    rm = ScriptedRewardModel({"So ANSWER:5": 0.9, "Thus ANSWER:7": 0.5, "Also ANSWER:7": 0.45})
    ctx = make_ctx(CHAINS, reward_model=rm)
    result = await run_search(ctx, BestOfNConfig(num_samples=3, answer_by=answer_by))
    assert result.answer == expected  # max score 0.9 for 5; PRM-weighted vote 0.95 for 7


async def test_best_of_n_needs_a_reward_model():
    ctx = make_ctx(CHAINS)
    with pytest.raises(ConfigError):
        await run_search(ctx, BestOfNConfig(num_samples=3))
    assert ctx.policy.requests == []


BEAM = {
    (): [Cand("r0\n\n"), Cand("r1\n\n"), Cand("r2\n\n"), Cand("r3\n\n")],
    ("r1\n\n",): [Cand("ANSWER:1", finish="eos"), Cand("r1b\n\n")],
    ("r2\n\n",): [Cand("r2a\n\n"), Cand("r2b\n\n")],
    ("r2\n\n", "r2a\n\n"): [Cand("x ANSWER:2", finish="eos"), Cand("y\n\n")],
    ("r2\n\n", "r2a\n\n", "y\n\n"): [Cand("z ANSWER:3", finish="eos"), Cand("w\n\n")],
    ("r2\n\n", "r2a\n\n", "y\n\n", "w\n\n"): [Cand("v ANSWER:4", finish="eos"), Cand("u ANSWER:5", finish="eos")],
    ("r1\n\n", "r1b\n\n"): [Cand("t ANSWER:6", finish="eos"), Cand("s ANSWER:7", finish="eos")],
}
BEAM_SCORES = {
    "r0\n\n": 0.1, "r1\n\n": 0.9, "r2\n\n": 0.8, "r3\n\n": 0.3, "ANSWER:1": 0.95, "r1b\n\n": 0.4,
    "r2a\n\n": 0.7, "r2b\n\n": 0.2, "x ANSWER:2": 0.6, "y\n\n": 0.65, "z ANSWER:3": 0.5, "w\n\n": 0.1,
}


async def test_step_beam_alphamath_keeps_b1_and_shrinks():
    ctx = make_ctx(BEAM, reward_model=ScriptedRewardModel(BEAM_SCORES))
    result = await run_search(ctx, StepBeamConfig(beam_width=2, num_children=2))
    expanded = [(texts(ctx, ctx.tree.path(n.id))[-1:] if n.id else [], n.children) for n in ctx.tree if n.children]
    # root gets B1*B2 = 4; the top 2 (r1, r2) get B2 = 2 each; after ANSWER:1 finishes the
    # beam is 1 wide: only r2a, then only y are expanded; z finishing empties it.
    assert [s.n for _, s in ctx.policy.requests] == [4, 2, 2, 2, 2]
    assert [e[0] for e in expanded] == [[], ["r1\n\n"], ["r2\n\n"], ["r2a\n\n"], ["y\n\n"]]
    assert [ctx.tree[i].answer for i in result.extra["finished"]] == ["1", "3"]
    assert result.answer == "1"


async def test_step_beam_search_and_learn_keeps_width():
    ctx = make_ctx(BEAM, reward_model=ScriptedRewardModel(BEAM_SCORES))
    result = await run_search(ctx, StepBeamConfig(beam_width=2, num_children=2, variant="search_and_learn"))
    finished = [ctx.tree[i].answer for i in result.extra["finished"]]
    # the width stays 2 (x finishes beside ANSWER:1); the level that reaches B1*B2 = 4
    # finished paths completes, then the search stops
    assert finished == ["1", "2", "3", "4", "5"]
    assert result.answer == "1"


async def test_step_beam_without_reward_model_ranks_by_logprob():
    script = {(): [Cand("bad\n\n", -2.0), Cand("good\n\n", -0.1)], ("good\n\n",): [Cand("ANSWER:g", finish="eos")]}
    ctx = make_ctx(script)
    result = await run_search(ctx, StepBeamConfig(beam_width=1, num_children=2))
    assert result.answer == "g"


DVTS = {
    (): [Cand("a\n\n"), Cand("b\n\n"), Cand("c\n\n"), Cand("d\n\n")],
    ("b\n\n",): [Cand("b1 ANSWER:1", finish="eos"), Cand("b2\n\n")],
    ("c\n\n",): [Cand("c1 ANSWER:2", finish="eos"), Cand("c2 ANSWER:1", finish="eos")],
}


async def test_dvts_runs_independent_subtrees():
    scores = {"a\n\n": 0.3, "b\n\n": 0.8, "c\n\n": 0.6, "d\n\n": 0.1, "b1 ANSWER:1": 0.9, "b2\n\n": 0.2,
              "c1 ANSWER:2": 0.4, "c2 ANSWER:1": 0.7}
    ctx = make_ctx(DVTS, reward_model=ScriptedRewardModel(scores))
    result = await run_search(ctx, DvtsConfig(num_samples=4, subtree_width=2))
    assert len(ctx.tree[0].children) == 4  # N candidates at the root, M per subtree
    ends = result.extra["subtrees"]
    assert [texts(ctx, ctx.tree.path(e)) for e in ends] == [["b\n\n", "b1 ANSWER:1"], ["c\n\n", "c2 ANSWER:1"]]
    assert result.answer == "1"
    assert [s.n for _, s in ctx.policy.requests] == [2, 2, 2, 2]


def tree_script(steps):
    known = {
        (): [Cand("A\n\n", -0.1), Cand("B\n\n", -0.5)],
        ("A\n\n",): [Cand("A1\n\n", -1.0), Cand("A2\n\n", -0.8)],
        ("B\n\n",): [Cand("B1\n\n", -0.05), Cand("B2 ANSWER:2", -2.0, "eos")],
        ("B\n\n", "B1\n\n"): [Cand("ANSWER:3", -0.1, "eos"), Cand("B1b\n\n", -3.0)],
    }
    return known.get(steps, [Cand("ANSWER:0", -0.5, "eos"), Cand("deeper\n\n", -0.5)])


def popped(ctx, result):
    return ["root" if i == 0 else ctx.tree[i].text.strip() for i in result.extra["expansion_order"]]


async def test_best_first_pops_by_priority():
    ctx = make_ctx(tree_script)
    result = await run_search(ctx, BestFirstConfig(expansion_width=2, max_terminals=2))
    # priorities (α = 0): A -0.1, B -0.5, A2 -0.9, A1 -1.1, B1 -0.55, B2 -2.5 (terminal)
    assert popped(ctx, result) == ["root", "A", "B", "B1"]
    assert result.answer == "3"  # B1's ANSWER:3 (-0.65) beats B2 (-2.5)


async def test_best_first_depth_alpha_changes_order():
    ctx = make_ctx(tree_script)
    result = await run_search(ctx, BestFirstConfig(expansion_width=2, depth_alpha=2.0, max_expansions=4, max_terminals=5))
    # α = 2: A2 = (-0.1 - 0.8) / 4 = -0.225 beats B = -0.5, and A2's child
    # "deeper" = (-0.1 - 0.8 - 0.5) / 9 = -0.156 beats A1 = -0.275: depth is encouraged
    assert popped(ctx, result) == ["root", "A", "A2", "deeper"]


async def test_best_first_stops_at_first_terminal_by_default():
    ctx = make_ctx(tree_script)
    result = await run_search(ctx, BestFirstConfig(expansion_width=2))
    assert popped(ctx, result) == ["root", "A", "B"] and result.answer == "2"


async def test_step_beam_drops_a_failed_beam_node_and_goes_on():
    fail = lambda steps: steps == ("r1\n\n",)  # noqa: E731
    ctx = make_ctx(BEAM, reward_model=ScriptedRewardModel(BEAM_SCORES), policy_kwargs={"fail_on": fail})
    result = await run_search(ctx, StepBeamConfig(beam_width=2, num_children=2))
    r1 = next(n for n in ctx.tree if n.text == "r1\n\n")
    assert r1.error is not None and not r1.children
    # r1 is dropped (the beam narrows to 1) and r2's line runs on: r2a, y, then z finishes
    assert result.answer == "3"
    assert [ctx.tree[i].answer for i in result.extra["finished"]] == ["3"]
