"""MCTS through the generic loop: hand-computed simulations, a bandit, parallelism, errors."""

import asyncio

import pytest

from search.algorithms import MctsConfig, run_search
from search.algorithms.mcts import mcts_search
from search.protocols import Verdict, VerdictStatus
from search_fakes import Cand, ScriptedRewardModel, make_ctx

TWO_ARMS = {
    (): [Cand("A\n\n", 0.0), Cand("B\n\n", 0.0)],
    ("A\n\n",): [Cand("A1\n\n", 0.0), Cand("A2\n\n", 0.0)],
    ("B\n\n",): [Cand("B1\n\n", 0.0), Cand("B2\n\n", 0.0)],
    ("B\n\n", "B1\n\n"): [Cand("B1a\n\n", 0.0), Cand("B1b\n\n", 0.0)],
}
TWO_ARM_SCORES = {"A\n\n": 0.2, "B\n\n": 0.8, "A1\n\n": 0.3, "A2\n\n": 0.1, "B1\n\n": 0.9, "B2\n\n": 0.7}


def by_text(ctx):
    return {n.text.strip(): n for n in ctx.tree if n.id}


async def test_puct_three_simulations_by_hand_alphamath_spec05():
    ctx = make_ctx(TWO_ARMS, reward_model=ScriptedRewardModel(TWO_ARM_SCORES))
    result = await run_search(ctx, MctsConfig(num_simulations=3, num_children=2, selection="puct", c=1.25))
    n = by_text(ctx)
    # sim 1 expands the root: A (1, 0.2), B (1, 0.8); root N = 2
    # sim 2: PUCT A = 0.2 + 1.25·1·√2/2 < B = 0.8 + 1.25·√2/2 -> expand B: B1 0.9, B2 0.7
    # sim 3: root N = 4: A = 0.2 + 1.25·2/2 = 1.45 > B = 0.8 + 1.25·2/4 = 1.425 -> expand A
    assert (n["A"].visits, n["A"].value) == (3, pytest.approx(0.2))
    assert (n["B"].visits, n["B"].value) == (3, pytest.approx(0.8))
    # root W = (0.2 + 0.8) + (0.9 + 0.7) + (0.3 + 0.1)
    assert (ctx.tree[0].visits, ctx.tree[0].value_sum) == (6, pytest.approx(3.0))
    assert n["A"].first_value == pytest.approx(0.2) and len(ctx.tree) == 7
    assert result.extra["simulations"] == 3


async def test_uct_three_simulations_by_hand_rest_mcts_star_spec02():
    ctx = make_ctx(TWO_ARMS, reward_model=ScriptedRewardModel(TWO_ARM_SCORES))
    await run_search(ctx, MctsConfig(num_simulations=3, num_children=2, selection="uct", c=0.7))
    # sim 3: root N = 4: A = 0.2 + 0.7·√(2 ln 4 / 1) = 1.366 < B = 0.8 + 0.7·√(2 ln 4 / 3) = 1.473;
    # in B (N = 3): B1 = 0.9 + 0.7·√(2 ln 3) = 1.938 > B2 = 1.738 -> B1 is expanded
    expanded = [n.text.strip() for n in ctx.tree if n.children and n.id]
    assert expanded == ["B", "B1"]


def bandit_script(steps):
    """Three arms; below an arm, three steps per expansion; terminal answers at depth 4."""
    if not steps:
        return [Cand("A\n\n", -0.1), Cand("B\n\n", -0.1), Cand("C\n\n", -0.1)]
    arm, depth = steps[0][0], len(steps)
    if depth >= 3:
        return [Cand(f"{arm}{depth}{k} ANSWER:{arm}", -0.1, "eos") for k in "xyz"]
    return [Cand(f"{arm}{depth}{k}\n\n", -0.1) for k in "xyz"]


ARM_MEANS = {"A": 0.3, "B": 0.8, "C": 0.5}


def bandit_rm():
    def score(text: str) -> float:
        if text.strip() in ARM_MEANS:
            return 0.5  # arm choice itself is uninformative
        return ARM_MEANS[text[0]] + {"x": 0.05, "y": 0.0, "z": -0.05}[text[2]]

    return ScriptedRewardModel(score)


@pytest.mark.parametrize("selection", ["puct", "uct", "x1"])
async def test_bandit_best_arm_gets_most_visits(selection):
    ctx = make_ctx(bandit_script, reward_model=bandit_rm())
    config = MctsConfig(num_simulations=12, num_children=3, selection=selection, answer_by="visits")
    result = await run_search(ctx, config)
    arms = {ctx.tree[c].text.strip(): ctx.tree[c] for c in ctx.tree[0].children}
    assert len(arms) == 3
    assert arms["B"].visits > arms["A"].visits and arms["B"].visits > arms["C"].visits
    assert result.answer == "B" and ctx.tree[result.path[1]].text == "B\n\n"
    # mean backup from every new child: N(node) = size of its subtree, Q = mean first value
    for node in ctx.tree:
        below = [ctx.tree[i] for i in ctx.tree.subtree(node.id) if i]
        assert node.visits == len(below)
        assert node.value == pytest.approx(sum(b.first_value for b in below) / len(below))


async def test_answer_by_value_and_vote():
    for answer_by in ("value", "vote", "selection"):
        ctx = make_ctx(bandit_script, reward_model=bandit_rm())
        result = await run_search(ctx, MctsConfig(num_simulations=12, num_children=3, answer_by=answer_by))
        assert result.answer == "B"


async def test_runs_every_simulation_even_when_answers_are_found():
    script = {(): [Cand("ANSWER:1", finish="eos"), Cand("go\n\n")]}
    script.update({("go\n\n",) * k: [Cand("ANSWER:1", finish="eos"), Cand("go\n\n")] for k in range(1, 8)})
    ctx = make_ctx(script, steps=None)
    result = await run_search(ctx, MctsConfig(num_simulations=4, num_children=2, value="prior"))
    assert result.extra["simulations"] == 4 and len(ctx.policy.requests) == 4 and result.answer == "1"


async def test_parallel_simulations_with_virtual_loss():
    ctx = make_ctx(bandit_script, reward_model=bandit_rm(), policy_kwargs={"latency": 0.005})
    result = await run_search(ctx, MctsConfig(num_simulations=16, num_children=3, num_parallel=4))
    assert ctx.policy.peak_in_flight > 1
    prefixes = [tuple(p) for p, _ in ctx.policy.requests]
    assert len(prefixes) == len(set(prefixes)) == 16  # no node expanded twice
    assert all(n.virtual_loss == 0 for n in ctx.tree)
    assert result.answer is not None


async def test_failed_expansion_marks_node_and_search_goes_on():
    fail_b = lambda steps: steps[:1] == ("B\n\n",)  # noqa: E731
    ctx = make_ctx(bandit_script, reward_model=bandit_rm(), policy_kwargs={"fail_on": fail_b})
    result = await run_search(ctx, MctsConfig(num_simulations=10, num_children=3))
    b = next(n for n in ctx.tree if n.text == "B\n\n")
    assert b.error is not None and not b.children
    assert result.extra["simulations"] == 10 and result.answer in {"A", "C"}


async def test_label_mode_rollouts_and_verified_terminals():
    async def oracle(text: str) -> Verdict:
        return Verdict(VerdictStatus.CORRECT if text.endswith("ANSWER:C") else VerdictStatus.INCORRECT)

    ctx = make_ctx(bandit_script, oracle=oracle)
    config = MctsConfig(num_simulations=10, num_children=3, value="rollout", num_rollouts=2, verify_terminals=True)
    result = await run_search(ctx, config)
    assert result.answer == "C"
    assert any("rollout" in n.scores for n in ctx.tree)
    assert all(n.scores.get("verifier") in (None, 0.0, 1.0) for n in ctx.tree)
    assert any(s.stop == () and s.n == 2 for _, s in ctx.policy.requests)  # rollout requests


async def test_parallel_simulations_never_expand_a_terminal_node_whose_parent_is_being_evaluated():
    # Node "a" expands into two EOS (terminal) steps whose evaluation is slow; meanwhile another
    # simulation finishes "b" and descends again. It must wait for "a" rather than pass through
    # it into a terminal child that is not yet marked dead and expand that child.
    def script(steps):
        if steps == ("a\n\n",):
            return [Cand("ANSWER:1 x", finish="eos"), Cand("ANSWER:2 y", finish="eos")]
        return [Cand("a\n\n"), Cand("b\n\n")] if not steps else [Cand(f"c{len(steps)}\n\n"), Cand(f"d{len(steps)}\n\n")]

    class SlowUnderA(ScriptedRewardModel):
        async def score(self, problem, paths, first=None):
            slow = any(len(p) > 1 and p[0] == "a\n\n" for p in paths)
            await asyncio.sleep(0.1 if slow else 0.001)
            return await super().score(problem, paths, first)

    ctx = make_ctx(script, reward_model=SlowUnderA(scores={"a\n\n": 0.9}, default=0.5))
    await mcts_search(ctx, MctsConfig(num_simulations=12, num_parallel=4, num_children=2, dedupe=True))
    assert [n.id for n in ctx.tree.nodes if n.terminal and n.children] == []
    assert any(n.terminal for n in ctx.tree.nodes)  # the terminal steps were created
