"""MC-NEST and MCTSr (spec 01): formulas by hand, selection distributions, scripted runs."""

import math
import random

import pytest

from search.algorithms import MCNestConfig, parse_algorithm_config, run_search
from search.algorithms.mc_nest import _Refine, sample_index
from search.backup import refine_backup, set_quality
from search.protocols import ConfigError, StepProposal
from search.refine import (
    CRITIQUE_REQUEST,
    DUMMY_ANSWERS,
    EVALUATE_REQUEST,
    REWRITE_REQUEST,
    parse_score,
    penalise,
    q_value,
    strip_eos,
)
from search.selection import (
    ROOT_UCT,
    fully_expanded,
    mc_nest_uct,
    mctsr_ucb,
    nash_prior,
    selection_probabilities,
)
from search.trace import SearchTrace
from search.tree import Tree
from search_fakes import EOT, SEP, ChatPolicy, chat_prompt, conversation, encode, make_chat_ctx

# --- formulas ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("85", 85), (" -40 points", -40), ("Score: 100", 100), ("+7", 7), ("150", None), ("-101", None),
    ("great answer", None), ("", None),
])
def test_parse_score_in_range_or_none(text, expected):  # spec 01 §3: integer in [-100, 100]
    assert parse_score(text) == expected


def test_penalty_rules():  # spec 01 §3: MC-NEST -5 if > 95; MCTSr 50 if >= 95
    assert [penalise(s, "subtract") for s in (94, 95, 96, 100)] == [94, 95, 91, 95]
    assert [penalise(s, "reset") for s in (94, 95, 96, -100)] == [94, 50, 50, -100]
    assert penalise(90, "subtract", limit=80, amount=10) == 80


def test_q_is_half_min_plus_mean():  # spec 01 §3: Q = (min + mean) / 2
    assert q_value([80, 40, -20]) == pytest.approx(0.5 * (-20 + 100 / 3))  # 6.6667
    assert q_value([91]) == 91 and q_value([]) == 0.0
    assert q_value([91, 80]) == pytest.approx(82.75)


def test_uct_formulas():  # spec 01 §5.2
    assert mc_nest_uct(50, 2, 3) == pytest.approx(50 + math.sqrt(math.log(4) / 2))  # 50.8326
    assert mc_nest_uct(-30, 1, None) == ROOT_UCT == 10000
    assert mctsr_ucb(40, 1, 0) == 40  # a root: ln(0 + 1) = 0
    assert mctsr_ucb(40, 2, 3) == pytest.approx(40 + 1.4 * math.sqrt(math.log(4) / (2 + 1e-5)))


@pytest.mark.parametrize("n, child_qs, q, rule, limit, expected", [
    (0, [], 10, "or", 2, False), (1, [5], 10, "or", 2, False), (1, [11], 10, "or", 2, True),
    (2, [1, 2], 10, "or", 2, True), (2, [10, 10], 10, "and", 3, False), (3, [1, 2, 3], 10, "and", 3, False),
    (3, [1, 10, 3], 10, "and", 3, True), (1, [50], 10, "and", 3, False),
])
def test_fully_expanded_rules(n, child_qs, q, rule, limit, expected):  # spec 01 §5.1
    assert fully_expanded(n, child_qs, q, rule, limit) is expected


def test_nash_prior_uniform_over_its_support():  # spec 01 §5.3
    assert nash_prior([1, 2, 3, 4], support=[2, 3, 5]) == [0.0, 1 / 3, 1 / 3, 0.0]
    assert nash_prior([1, 2], support=[]) == [0.0, 0.0]


def test_selection_probabilities_by_hand():  # spec 01 §5.4
    ucts, prior = [10000.0, 3.0, 1.0], [0.0, 0.5, 0.5]
    assert selection_probabilities("greedy", ucts, prior) == [1.0, 0.0, 0.0]  # UCT + pi: the root
    assert selection_probabilities("importance_sampling", ucts, prior) == pytest.approx([0, 0.75, 0.25])
    # pairs (0,1), (0,2) weigh 0 (pi_0 = 0); (1,2): |3 - 1| * .25 -> its higher-UCT member 1
    assert selection_probabilities("pairwise_importance_sampling", ucts, prior) == pytest.approx([0, 1, 0])
    # non-NE: IS proportional to UCT; pairwise over ordered pairs, weight max - min
    assert selection_probabilities("importance_sampling", [3, 1, 2], None) == pytest.approx([3 / 6, 1 / 6, 2 / 6])
    assert selection_probabilities("pairwise_importance_sampling", [3, 1, 2], None) == pytest.approx([6 / 8, 0, 2 / 8])
    assert selection_probabilities("greedy", [3, 1, 3], None) == [1.0, 0.0, 0.0]  # ties: first
    # total weight <= 0 -> uniform; negative weights clipped
    assert selection_probabilities("importance_sampling", [5.0, 2.0], [0.0, 0.0]) == [0.5, 0.5]
    assert selection_probabilities("importance_sampling", [-5.0, 2.0], None) == [0.0, 1.0]
    assert selection_probabilities("pairwise_importance_sampling", [4.0, 4.0], None) == [0.5, 0.5]


def chi_square(counts, probs):
    total = sum(counts)
    return sum((c - total * p) ** 2 / (total * p) for c, p in zip(counts, probs) if p > 0)


def test_sampler_matches_its_distribution():  # spec 01 §5.4: chi-square, df = 3, p = 0.001 -> 16.27
    probs, rng, counts = [0.4, 0.3, 0.2, 0.1], random.Random(7), [0, 0, 0, 0]
    for _ in range(20000):
        counts[sample_index(rng, probs)] += 1
    assert chi_square(counts, probs) < 16.27
    assert chi_square([5000] * 4, probs) > 16.27  # the test can fail


def test_refine_backup_blends_and_counts():  # spec 01 §7
    tree = Tree([1])
    for parent in (0, 1, 2):
        tree.add_child(parent, StepProposal("a", (9,), (), "stop"), terminal=False, prompt_ids=[1])
    for node_id, q in ((1, 10.0), (2, 30.0), (3, 70.0)):
        set_quality(tree.nodes[node_id], q)
    refine_backup(blend=True, count_visits=True)(tree, 3, 70.0)
    assert tree.nodes[2].value == 50.0 and tree.nodes[1].value == 30.0  # (30+70)/2, (10+50)/2
    assert [tree.nodes[i].visits for i in (1, 2, 3)] == [2, 2, 1] and tree.nodes[0].visits == 0
    refine_backup(blend=False, count_visits=False)(tree, 3, 70.0)  # MCTSr: Q from samples, N = samples
    assert tree.nodes[2].value == 50.0 and tree.nodes[2].visits == 2


# --- the tree holds whole answers -----------------------------------------------------------


def test_answer_nodes_do_not_continue_their_parents_tokens():
    tree = Tree([1, 2])
    step = tree.add_child(0, StepProposal("s", (5,), (), "stop"), terminal=False)
    ans = tree.add_child(step.id, StepProposal("whole", (6, 7), (), "eos"), terminal=False, prompt_ids=[1, 2, 8])
    after = tree.add_child(ans.id, StepProposal("more", (9,), (), "stop"), terminal=False)
    assert tree.path_token_ids(step.id) == [1, 2, 5]
    assert tree.path_token_ids(ans.id) == [1, 2, 8, 6, 7] and tree.path_text(ans.id) == "whole"
    assert tree.content_path(after.id) == [ans.id, after.id] and tree.path_text(after.id) == "wholemore"


def test_strip_eos_and_fake_turns():
    assert strip_eos([4, 5, EOT], EOT) == [4, 5] and strip_eos([4, 5], EOT) == [4, 5]
    ids = chat_prompt("q") + encode("a") + [EOT, *encode("u"), SEP]
    assert conversation(ids) == [("user", "q"), ("assistant", "a"), ("user", "u"), ("assistant", "")]


# --- scripted runs ---------------------------------------------------------------------------

ROOT, FIX = "I think ANSWER:3", "Fixed: ANSWER:4"


def replier(scores, *, solve=ROOT, rewrite=FIX, critique="It is wrong."):
    """Replies by request: zero-shot, critique, rewrite; a self-evaluation reads ``scores``
    (answer text -> replies, by how often that exact prompt was asked)."""

    def reply(turns, count):
        users = [i for i, (role, _) in enumerate(turns) if role == "user"]
        last = turns[users[-1]][1]
        if last == EVALUATE_REQUEST:
            replies = scores[turns[users[-1] - 1][1]]
            return replies[min(count, len(replies) - 1)]
        return {CRITIQUE_REQUEST: critique, REWRITE_REQUEST: rewrite}.get(last, solve)

    return reply


def samples(node):
    return [s["score"] for s in node.info.get("reward_samples", [])]


async def test_mc_nest_run_tree_rewards_q_and_answer():  # spec 01 §3, §4, §5.1, §7, §8
    ctx = make_chat_ctx(replier({ROOT: [" 20"], FIX: [" 96", " 80", " 70"]}), seed=3)
    result = await run_search(ctx, MCNestConfig(num_rollouts=2))
    tree = ctx.tree
    # one zero-shot root under the problem node; one child per rollout, a chain here: the root
    # is fully expanded (OR rule) once its child beats it
    assert [n.parent for n in tree.nodes] == [None, 0, 1, 2]
    assert [n.info["role"] for n in tree.nodes[1:]] == ["zero_shot", "refine", "refine"]
    assert result.extra["selected"] == [1, 2] and result.extra["rollouts"] == 2
    # a new sample at every evaluation; 96 -> 91 by the penalty
    assert samples(tree[1]) == [20, 20] and samples(tree[2]) == [91, 80] and samples(tree[3]) == [70]
    assert tree[2].info["reward_samples"][0]["raw"] == 96
    # Q: child (82.75 + 70)/2 after the backup; root (20 + 91)/2 = 55.5 then (55.5 + 76.375)/2
    assert tree[3].value == 70 and tree[2].value == pytest.approx(76.375) and tree[1].value == pytest.approx(65.9375)
    assert tree[2].info["q_history"] == [91, 82.75]
    assert [tree[i].visits for i in (1, 2, 3)] == [4, 3, 1]  # +1 per evaluation and per backup pass
    assert result.answer == "4" and result.path == [0, 1, 2]
    assert tree[2].info["critique"] == "It is wrong." and tree[2].info["reward_improvement"] == 71
    # candidate records: iteration 1 only the root (UCT 10000), iteration 2 only the child
    assert tree[1].info["selections"] == [{"iteration": 1, "uct": 10000.0, "prior": 0.0, "probability": 1.0,
                                           "visits": 1, "q": 20.0, "selected": True}]
    assert [s["iteration"] for s in tree[2].info["selections"]] == [2]
    # usage: 5 self-evaluations, counted as reward calls and as generated tokens
    assert result.usage.reward_calls == 5 and result.usage.calls == 5 + 1 + 2 * 2
    assert result.usage.reward_tokens > 0 and not result.extra["dummy_selected"]


async def test_follow_up_turns_extend_the_conversation_as_token_ids():  # spec 01 §6, prefix cache
    ctx = make_chat_ctx(replier({ROOT: [" 20"], FIX: [" 60"]}))
    await run_search(ctx, MCNestConfig(num_rollouts=1, history="conversation"))
    requests = [prefix for prefix, _ in ctx.policy.requests]
    root = ctx.tree[1]
    conv = list(root.prompt_ids) + list(root.token_ids[:-1])  # the reply's EOS is the turn's close
    critique = next(p for p in requests if conversation(p)[-2] == ("user", CRITIQUE_REQUEST))
    rewrite = next(p for p in requests if conversation(p)[-2] == ("user", REWRITE_REQUEST))
    assert critique[: len(conv)] == conv and rewrite[: len(critique)] == critique
    assert list(ctx.tree[2].prompt_ids) == rewrite  # history=conversation: the child's own chat
    for prefix in requests:  # never a doubled EOT (the fake's conversation() asserts it)
        conversation(prefix)


async def test_mctsr_two_roots_reset_penalty_and_and_rule():  # spec 01 §2, §3, §5.1
    ctx = make_chat_ctx(replier({ROOT: [" 97", " 30"], FIX: [" 40"], **{d: [" 5"] for d in DUMMY_ANSWERS}}))
    result = await run_search(ctx, parse_algorithm_config({"algorithm": "mctsr", "num_rollouts": 3}))
    tree = ctx.tree
    roots = result.extra["roots"]
    assert len(roots) == 2 and all(tree[r].parent == 0 for r in roots)
    assert tree[roots[1]].text in DUMMY_ANSWERS and tree[roots[1]].answer is None
    assert samples(tree[roots[0]])[0] == 50  # 97 >= 95 -> 50
    assert all(tree[i].visits == len(samples(tree[i])) for i in range(1, len(tree)))  # N = samples
    # MCTSr: greedy UCB, roots explore nothing; AND/3 keeps the root a candidate under 3 children
    assert result.extra["selected"][0] == roots[0]
    assert result.algorithm == "mctsr" and result.extra["rollouts"] == 3


async def test_parse_retries_then_fallback():  # spec 01 §3: up to 3 attempts per sample
    ctx = make_chat_ctx(replier({ROOT: [" great", " 85"], FIX: [" nope"]}))
    result = await run_search(ctx, MCNestConfig(num_rollouts=1, fallback_score=-10))
    root, child = ctx.tree[1].info["reward_samples"], ctx.tree[2].info["reward_samples"]
    assert root[0]["raw"] == 85 and root[0]["attempts"] == 2
    assert child[0] == {"raw": None, "score": -10, "reply": " nope", "attempts": 3, "iteration": 1}
    assert result.extra["unparsed_rewards"] == 1


async def test_dummy_root_and_candidate_prior():  # spec 01 §2, §5.3
    ctx = make_chat_ctx(replier({"I don't know.": [" -50"], FIX: [" -60", " 10"]}))
    result = await run_search(ctx, MCNestConfig(num_rollouts=3, roots="dummy", selection="greedy"))
    tree = ctx.tree
    assert tree[1].text == "I don't know." and result.extra["dummy_selected"]
    # greedy + root UCT 10000: the root is picked while it is a candidate (child -60 < -50: not yet
    # fully expanded), so it gets its 2 children first
    assert result.extra["selected"][:2] == [1, 1] and tree[1].children == [2, 3]


def pick_distribution(config, rounds=4000):
    """Builds root -> {a, b, c} (answers with hand-set Q and visits) and draws ``rounds`` picks."""
    ctx = make_chat_ctx(replier({}))
    run = _Refine(ctx, config)
    tree = ctx.tree
    root = ctx.add_answer(0, StepProposal("r", (20,), (), "stop"), ctx.root_prefix)
    run.roots = [root.id]
    for q, visits in ((10.0, 1), (30.0, 2), (-40.0, 1)):
        child = ctx.add_answer(root.id, StepProposal("c", (21,), (), "stop"), ctx.root_prefix)
        child.visits = visits
        set_quality(child, q)
    root.visits = 4
    set_quality(root, 90.0)  # beats every child: the root stays a candidate under OR/4
    counts = [0, 0, 0, 0]
    for _ in range(rounds):
        counts[run.pick(tree, set())[-1] - 1] += 1
    return counts, [run.uct(i) for i in (1, 2, 3, 4)]


@pytest.mark.parametrize("policy", ["importance_sampling", "pairwise_importance_sampling"])
async def test_pick_follows_the_policy_distribution(policy):  # spec 01 §5.4, chi-square df <= 3
    config = MCNestConfig(selection=policy, max_children=4, nash_support="candidates", seed=11)
    counts, ucts = pick_distribution(config)
    assert ucts[0] == 10000 and ucts[1] == pytest.approx(10 + math.sqrt(math.log(5)))
    expected = selection_probabilities(policy, ucts, [0.25] * 4)
    if policy == "importance_sampling":  # w = UCT * 1/4, the -40 child clipped to 0
        total = sum(max(u, 0) for u in ucts)
        assert expected == pytest.approx([max(u, 0) / total for u in ucts])
    else:  # every pair's winner is its higher-UCT member: the root wins all pairs it is in
        assert expected[0] == pytest.approx(sum(abs(ucts[0] - u) for u in ucts[1:]) / sum(
            abs(ucts[i] - ucts[j]) for i in range(4) for j in range(i + 1, 4)))
    assert chi_square(counts, expected) < 16.27


async def test_code_faithful_prior_excludes_grandchildren_and_root():  # spec 01 §5.3
    counts, _ = pick_distribution(MCNestConfig(selection="importance_sampling", max_children=4, seed=1), 500)
    assert counts[0] == 0 and counts[3] == 0  # pi = 0 for the root; the -40 child clipped


async def test_same_seed_replays_the_run():  # spec 01 §5.4: the RNG is the search's own
    scores = {ROOT: [" 20", " 50", " 35"], FIX: [f" {s}" for s in (30, 10, 60, 45, 70, 5, 90, 80, 15, 25)]}
    config = MCNestConfig(num_rollouts=6, selection="pairwise_importance_sampling", nash_support="candidates",
                          max_children=3)

    async def once(seed):
        ctx = make_chat_ctx(replier(scores), seed=seed)
        result = await run_search(ctx, config)
        probs = [s["probability"] for n in ctx.tree for s in n.info.get("selections", [])]
        return result.extra["selected"], [n.parent for n in ctx.tree], [samples(n) for n in ctx.tree], probs

    first = await once(5)
    assert first == await once(5) and len(first[0]) == 6
    assert any(0 < p < 1 for p in first[3])  # the picks were random draws, not forced


async def test_budget_stops_and_trace_round_trips():
    from search.context import Budget

    ctx = make_chat_ctx(replier({ROOT: [" 20"], FIX: [" 30"]}), budget=Budget(max_generated_tokens=60))
    result = await run_search(ctx, MCNestConfig(num_rollouts=50))
    assert result.extra["budget_exhausted"] and result.extra["rollouts"] < 50
    trace = SearchTrace.model_validate_json(result.to_trace(ctx.problem).model_dump_json())
    rebuilt = trace.to_tree()
    assert rebuilt.nodes == ctx.tree.nodes and rebuilt[1].info["reward_samples"]


async def test_needs_chat_turns():
    ctx = make_chat_ctx(replier({}))
    ctx.chat = None
    with pytest.raises(ConfigError, match="chat"):
        await run_search(ctx, MCNestConfig())


async def test_trees_and_a_rollouts_requests_go_concurrently():  # ponder's scheduler model
    import asyncio

    one = make_chat_ctx(replier({ROOT: [" 20"], FIX: [" 30"]}))
    await run_search(one, MCNestConfig(num_rollouts=2))
    assert one.policy.peak_in_flight == 2  # the picked node's new sample beside its critique
    shared = ChatPolicy(replier({ROOT: [" 20"], FIX: [" 30"]}))
    ctxs = [make_chat_ctx(shared.reply_fn, problem_id=f"p{i}", policy=shared) for i in range(3)]
    results = await asyncio.gather(*(run_search(c, MCNestConfig(num_rollouts=2)) for c in ctxs))
    assert shared.peak_in_flight >= 3 and all(r.answer == "4" for r in results)
