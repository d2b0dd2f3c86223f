"""SearchContext.expand, metering, budgets, and the evaluators."""

import pytest

from search.context import Budget
from search.evaluators import make_value_fn, reward_values, rollout_value
from search.protocols import ConfigError, Verdict, VerdictStatus
from search_fakes import Cand, ScriptedRewardModel, encode, make_ctx

SCRIPT = {
    (): [Cand("Add.\n\n", -0.2), Cand("ANSWER:4", -0.5, "eos"), Cand("Add.\n\n", -0.2)],
    ("Add.\n\n",): [Cand("Sum ANSWER:4", -0.1, "eos"), Cand("Hmm.\n\n", -0.9)],
}


async def test_expand_appends_children_with_priors_flags_answers():
    ctx = make_ctx(SCRIPT)
    kids = await ctx.expand(0, 2)
    a, b = (ctx.tree[i] for i in kids)
    assert (a.text, a.terminal, a.answer, a.logprob_mean) == ("Add.\n\n", False, None, pytest.approx(-0.2))
    assert (b.text, b.terminal, b.answer, b.finish_reason) == ("ANSWER:4", True, "4", "eos")
    assert a.token_ids == tuple(encode("Add.\n\n"))
    grand = await ctx.expand(a.id, 2)
    assert ctx.tree[grand[0]].answer == "4"  # extracted from the whole path text
    prefixes = [p for p, _ in ctx.policy.requests]
    assert prefixes[0] == ctx.root_prefix
    assert prefixes[1] == ctx.root_prefix + list(a.token_ids)  # parent's prefix + step tokens, exactly
    sampling = ctx.policy.requests[0][1]
    assert (sampling.n, sampling.stop, sampling.max_tokens) == (2, ("\n\n",), ctx.steps.max_step_tokens)
    assert ctx.usage.calls == 2
    assert ctx.usage.generated_tokens == len("Add.\n\n") + len("ANSWER:4") + len("Sum ANSWER:4") + len("Hmm.\n\n")
    assert ctx.usage.prompt_tokens == len(prefixes[0]) + len(prefixes[1])


async def test_dedupe_and_temperature_override():
    ctx = make_ctx(SCRIPT)
    kids = await ctx.expand(0, 3, dedupe=True)
    assert [ctx.tree[i].text for i in kids] == ["Add.\n\n", "ANSWER:4"]
    greedy = await ctx.expand(0, 2, temperature=0.0, dedupe=True)
    assert greedy == []  # both greedy samples duplicate an existing child
    assert ctx.policy.requests[-1][1].temperature == 0.0


async def test_failed_expansion_marks_node_errored():
    ctx = make_ctx(SCRIPT, policy_kwargs={"fail_on": lambda steps: steps == ("Add.\n\n",)})
    a = (await ctx.expand(0, 1))[0]
    assert await ctx.expand(a, 2) == []
    assert "ModelServerError" in ctx.tree[a].error
    assert ctx.tree[0].error is None


async def test_budget_checked_before_each_call():
    ctx = make_ctx(SCRIPT, budget=Budget(max_calls=1))
    assert not ctx.exhausted()
    await ctx.expand(0, 1)
    assert ctx.exhausted()
    assert await ctx.expand(1, 1) == []
    assert len(ctx.policy.requests) == 1
    tokens = make_ctx(SCRIPT, budget=Budget(max_generated_tokens=5))
    await tokens.expand(0, 1)
    assert tokens.exhausted()


async def test_seeds_derive_from_base_seed_and_expansion_count():
    ctx = make_ctx(SCRIPT, seed=123)
    await ctx.expand(0, 1)
    await ctx.expand(0, 1)
    seeds = [s.seed for _, s in ctx.policy.requests]
    assert None not in seeds and seeds[0] != seeds[1]
    again = make_ctx(SCRIPT, seed=123)
    await again.expand(0, 1)
    assert again.policy.requests[0][1].seed == seeds[0]  # deterministic
    assert make_ctx(SCRIPT).step_sampling(0, [1], 1).seed is None


async def test_reward_values_aggregate_and_cache():
    rm = ScriptedRewardModel({"Add.\n\n": 0.9, "Sum ANSWER:4": 0.6, "Hmm.\n\n": 0.2})
    ctx = make_ctx(SCRIPT, reward_model=rm)
    a = (await ctx.expand(0, 1))[0]
    kids = await ctx.expand(a, 2)
    assert await reward_values(ctx, kids, "min") == [pytest.approx(0.6), pytest.approx(0.2)]
    assert len(rm.calls) == 1 and rm.calls[0] == [["Add.\n\n", "Sum ANSWER:4"], ["Add.\n\n", "Hmm.\n\n"]]
    assert await reward_values(ctx, kids, "product") == [pytest.approx(0.54), pytest.approx(0.18)]
    assert await reward_values(ctx, [a], "last") == [pytest.approx(0.9)]
    assert len(rm.calls) == 1  # every step already scored: no new call
    assert ctx.tree[kids[0]].scores == {"prm": 0.6}
    assert ctx.usage.reward_calls == 1


async def test_reward_values_ask_only_for_unscored_steps():
    rm = ScriptedRewardModel({"Add.\n\n": 0.9, "Sum ANSWER:4": 0.6, "Hmm.\n\n": 0.2})
    ctx = make_ctx(SCRIPT, reward_model=rm)
    a = (await ctx.expand(0, 1))[0]
    assert await reward_values(ctx, [a], "last") == [pytest.approx(0.9)]
    kids = await ctx.expand(a, 2)
    assert await reward_values(ctx, kids, "min") == [pytest.approx(0.6), pytest.approx(0.2)]
    assert rm.firsts == [[0], [1, 1]]  # the parent's step was scored by the first call
    assert ctx.tree[a].scores == {"prm": 0.9} and ctx.tree[kids[1]].scores == {"prm": 0.2}


async def test_reward_model_failure_marks_nodes_errored():
    ctx = make_ctx(SCRIPT, reward_model=ScriptedRewardModel(fail=True))
    kids = await ctx.expand(0, 2)
    assert await reward_values(ctx, kids, "last") == [0.0, 0.0]
    assert all("ModelServerError" in ctx.tree[i].error for i in kids)


async def test_rollouts_and_verification_refuse_in_solve_mode():
    ctx = make_ctx(SCRIPT)
    kids = await ctx.expand(0, 2)
    with pytest.raises(ConfigError) as err:
        await rollout_value(ctx, kids[0], 4)
    assert err.value.field == "oracle"
    with pytest.raises(ConfigError):
        make_value_fn(ctx, "rollout")
    with pytest.raises(ConfigError):
        make_value_fn(ctx, "prior", verify_terminals=True)
    with pytest.raises(ConfigError):
        make_value_fn(ctx, "reward_model")
    assert len(ctx.policy.requests) == 1  # nothing was spent


async def test_rollouts_in_label_mode():
    checked = []

    async def oracle(text: str) -> Verdict:
        checked.append(text)
        ok = text.endswith("ANSWER:4")
        return Verdict(VerdictStatus.CORRECT if ok else VerdictStatus.INCORRECT)

    script = dict(SCRIPT)
    ctx = make_ctx(script, oracle=oracle)
    a, b = (await ctx.expand(0, 2))
    # rollouts from "Add." sample the scripted continuations without the stop string
    assert await rollout_value(ctx, a, 4) == pytest.approx(0.5)
    rollout_request = ctx.policy.requests[-1][1]
    assert (rollout_request.n, rollout_request.stop) == (4, ())
    assert ctx.tree[a].scores["rollout"] == pytest.approx(0.5)
    assert len(ctx.tree) == 3  # rollout text is not added to the tree
    value_fn = make_value_fn(ctx, "prior", verify_terminals=True)
    values = await value_fn([b])
    assert values == [1.0] and ctx.tree[b].scores["verifier"] == 1.0


def _branching(steps):
    if len(steps) >= 3:
        return [Cand(f"end{len(steps)} ANSWER:1", finish="eos"), Cand("alt ANSWER:2", finish="eos")]
    return [Cand(f"s{len(steps)}a\n\n", -0.3), Cand(f"s{len(steps)}b\n\n", -0.2)]


@pytest.mark.parametrize("algorithm", ["mcts", "step_beam", "best_first", "dvts"])
async def test_prompts_are_parent_prefix_plus_step_tokens(algorithm):
    from search.algorithms import parse_algorithm_config, run_search

    ctx = make_ctx(_branching, reward_model=ScriptedRewardModel())
    extra = {"mcts": {"num_simulations": 8, "num_children": 2}, "dvts": {"num_samples": 4, "subtree_width": 2}}
    await run_search(ctx, parse_algorithm_config({"algorithm": algorithm, **extra.get(algorithm, {})}))
    tree = ctx.tree
    for node in tree:
        if node.parent is not None:
            assert tree.path_token_ids(node.id) == tree.path_token_ids(node.parent) + list(node.token_ids)
    expanded = {tuple(tree.path_token_ids(n.id)) for n in tree if n.children}
    sent = [tuple(p) for p, _ in ctx.policy.requests]
    assert set(sent) == expanded  # every prompt is exactly an expanded node's token path
    assert all(p[: len(ctx.root_prefix)] == tuple(ctx.root_prefix) for p in sent)
