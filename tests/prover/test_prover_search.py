"""Best-first proof search, the planner, agents and the shared cache with scripted fakes (spec 04)."""

from __future__ import annotations

import pytest
from prover_fakes import CharTokenizer, GraphEnv, ScriptedPlanner, ScriptedPolicy

from search.protocols import Problem, TacticResult, TacticStatus, Theorem
from search.prover.agents import BfsProverConfig, prove_theorem
from search.budget import Meter
from search.prover.bfs import ProverConfig, best_first_attempt
from search.prover.cache import CacheCore, LocalProofCache, StepProof
from search.prover.planner import make_plan
from search.prover.prompts import parse_plan, parse_tactic

TOK = CharTokenizer()
THM = Theorem("t", "A")


async def test_best_first_order_and_dedup():
    # spec 04 §2: pop the highest Σ logprob / depth^α; duplicate tactics dropped; a state
    # reached twice is merged, not pushed again (§8).
    env = GraphEnv({("A", "a1"): ("B",), ("A", "a2"): ("C",), ("A", "a3"): ("B",),
                    ("B", "b1"): ("D",), ("C", "c1"): ()})
    policy = ScriptedPolicy({"A": [("a1", -0.1), ("a1.", -0.1), ("a3", -0.2), ("a2", -0.9)],
                             "B": [("b1", -2.0)], "D": [("nope", -0.1)], "C": [("c1", -0.1)]})
    meter = Meter()
    out = await best_first_attempt(env.start(THM).state, env, policy, TOK, ProverConfig(expansion_width=4), meter,
                                   goal_reached=lambda s: s.proved)
    assert out.status == "proved" and out.tactics == ["a2", "c1"]
    texts = {n.id: n.text for n in out.tree.nodes}
    expanded = [texts[i] if i else "root" for i in out.expansion_order]
    # root; then B (-0.1) before C (-0.9); B's child D scores -0.1 + -2.0 = -2.1 < -0.9, so C next.
    assert expanded == ["root", "a1", "a2"]
    assert [t for g, t in env.applied if g == "A"] == ["a1", "a3", "a2"]  # "a1." deduplicated
    merged_child = next(i for i, t in texts.items() if t == "a3")
    assert out.merged[merged_child] == next(i for i, t in texts.items() if t == "a1")
    assert meter.usage.calls == 3 and meter.tool_calls == 5
    assert out.steps[0]["state"] == "A" and out.steps[1]["tactic"] == "c1"


async def test_depth_alpha_prefers_deep_paths():
    # spec 04 §2: with α > 0 the deeper node's negative sum is divided by depth^α.
    env = GraphEnv({("A", "x"): ("B",), ("A", "y"): ("C",), ("B", "z"): ("E",), ("E", "w"): ("F",),
                    ("C", "c"): ()})
    policy = ScriptedPolicy({"A": [("x", -0.5), ("y", -0.8)], "B": [("z", -0.5)], "E": [("w", -0.5)],
                             "F": [("f", -0.5)], "C": [("c", -0.1)]})
    flat = await best_first_attempt(env.start(THM).state, env, policy, TOK, ProverConfig(depth_alpha=0.0),
                                    Meter(), goal_reached=lambda s: s.proved)
    deep = await best_first_attempt(env.start(THM).state, env, policy, TOK,
                                    ProverConfig(depth_alpha=2.0, max_expansions=3), Meter(),
                                    goal_reached=lambda s: s.proved)
    assert flat.status == "proved" and len(flat.expansion_order) == 3
    assert deep.status == "exhausted"  # α = 2 keeps going down x, z, w


async def test_errors_become_preference_pairs():
    # spec 04 §3 / §7: (state, tactic on the proof, tactic that errored from the same state).
    env = GraphEnv({("A", "good"): ()})
    policy = ScriptedPolicy({"A": [("bad", -0.1), ("good", -0.5)]})
    out = await best_first_attempt(env.start(THM).state, env, policy, TOK, ProverConfig(), Meter(),
                                   goal_reached=lambda s: s.proved)
    assert out.pairs == [{"state": "A", "chosen": "good", "rejected": "bad"}]
    assert out.tree.nodes[1].error.startswith("tactic 'bad' fails")


def test_parse_tactic_and_plan():
    assert parse_tactic("```\nintros n.\n```") == "intros n"
    # a fence's language tag is never the tactic (issue 24 §4)
    assert parse_tactic("```coq\nintros n.\n```") == "intros n"
    assert parse_tactic("Here:\n```Coq\nsimpl. reflexivity.\n```") == "simpl"
    assert parse_tactic("```ltac\n\n  `auto`.\n```") == "auto"
    assert parse_tactic("```coq\n```") == ""
    assert parse_tactic("`reflexivity`.") == "reflexivity"
    assert parse_tactic("Tactic: simpl.") == "simpl"
    assert parse_tactic("intros n. simpl. reflexivity.") == "intros n"
    assert parse_tactic("rewrite Nat.add_comm.") == "rewrite Nat.add_comm"
    assert parse_plan("assert (h1 : 1 + 1 = 2).\nfoo\n`assert (h2 : forall n, n = n).`") == [
        ("h1", "1 + 1 = 2"), ("h2", "forall n, n = n")]


# ---- the cache (spec 04 §4) ----

EDGES = {("S1", "p1"): (), ("S2", "p2"): (), ("A+h1+h2", "fin"): (), ("A+h1", "fin1"): ()}


def test_cache_rejects_stale_and_failing_updates_and_resets_on_failed_final_check():
    env = GraphEnv(EDGES)
    core = CacheCore(env)
    core.register(THM, [("h1", "S1"), ("h2", "S2")])
    assert not core.update("t", 1, StepProof(["p2"])).accepted          # stale: progress is 0
    assert not core.update("t", 0, StepProof(["p2"])).accepted          # replay fails on S1
    assert core.entry("t").rejected == 2 and core.progress("t") == 0
    assert core.update("t", 0, StepProof(["p1"])).accepted
    assert not core.update("t", 0, StepProof(["p1"])).accepted          # now stale
    assert core.update("t", 1, StepProof(["p2"])).accepted
    assert core.prefix("t", 2) == ["assert (h1 : S1)", "p1", "assert (h2 : S2)", "p2"]
    env.edges[("A+h1+h2", "fin")] = ()  # the main goal's proof replays ...
    bad_check = env.check
    env.check = lambda th, tactics: type(bad_check(th, tactics))(False, "Axioms: smuggled")  # ... but the final check says no
    res = core.update("t", 2, StepProof(["fin"]))
    assert not res.accepted and "reset" in res.reason
    entry = core.entry("t")
    assert entry.progress == 0 and entry.proofs == [] and entry.resets == 1 and entry.final is None
    env.check = bad_check
    for step, tac in ((0, "p1"), (1, "p2"), (2, "fin")):
        assert core.update("t", step, StepProof([tac])).accepted
    assert core.entry("t").final == ["assert (h1 : S1)", "p1", "assert (h2 : S2)", "p2", "fin"]


def test_cache_replan_keeps_proven_subgoals():
    core = CacheCore(GraphEnv(EDGES))
    core.register(THM, [("h1", "S1"), ("h2", "BAD")])
    assert core.update("t", 0, StepProof(["p1"])).accepted
    assert not core.replan("t", 0, [("x", "S9")])                       # progress moved
    assert core.replan("t", 1, [("h3", "S2")])
    assert core.entry("t").plan == [("h1", "S1"), ("h3", "S2")]


# ---- planner and agents ----

async def test_plan_regenerated_until_it_checks():
    env = GraphEnv({})
    plain = env.check_plan

    def check_plan(th, subgoals):
        return TacticResult(TacticStatus.ERROR, error="ill-typed") if subgoals[-1][1] == "BAD" else plain(th, subgoals)

    env.check_plan = check_plan
    planner = ScriptedPlanner([[("h1", "BAD")], [("h1", "S1")]])
    plan, log = await make_plan(THM, env, planner, retries=3)
    assert plan == [("h1", "S1")] and [t["ok"] for t in log["tries"]] == [False, True]


async def test_agents_fast_forward_over_a_subgoal_another_agent_proved():
    # issue 13: a scripted planner + two agents where only one can prove subgoal 1 -> the
    # other proves subgoal 2 from the cached prefix (spec 04 §4 steps 1-3).
    env = GraphEnv(EDGES)
    knows_1 = ScriptedPolicy({"S1": [("p1", -0.1)], "S2": [("junk", -0.1)], "A+h1+h2": [("fin", -0.1)]})
    knows_2 = ScriptedPolicy({"S1": [("junk", -0.1)], "S2": [("p2", -0.1)], "A+h1+h2": [("fin", -0.1)]})
    config = BfsProverConfig(num_agents=2, planner=True, max_calls=60, max_replans=0,
                             prover=ProverConfig(max_expansions=2, expansion_width=1))
    out = await prove_theorem(THM, env, [knows_1, knows_2], TOK, config,
                              planner=ScriptedPlanner([[("h1", "S1"), ("h2", "S2")]]))
    assert out.proved and out.proof == ["assert (h1 : S1)", "p1", "assert (h2 : S2)", "p2", "fin"]
    assert [p.agent for p in out.entry.proofs[:2]] == [0, 1]
    by_agent1 = [a for a in out.attempts if a["agent"] == 1 and a["step"] == 1 and a["status"] == "proved"]
    assert by_agent1 and by_agent1[0]["prefix"][:2] == ["assert (h1 : S1)", "p1"]  # the cached prefix
    assert out.cache_hits >= 1
    assert "S2" not in knows_1.requests or all(a["status"] != "proved" for a in out.attempts
                                              if a["agent"] == 0 and a["step"] == 1)
    trace = out.to_result().to_trace(Problem("t", "A"))
    assert trace.extra["status"] == "proved" and trace.nodes[0].children


async def test_without_sharing_agents_do_not_see_each_others_subgoals():
    env = GraphEnv(EDGES)
    knows_1 = ScriptedPolicy({"S1": [("p1", -0.1)], "S2": [("junk", -0.1)]})
    knows_2 = ScriptedPolicy({"S1": [("junk", -0.1)], "S2": [("p2", -0.1)]})
    config = BfsProverConfig(num_agents=2, planner=True, share_cache=False, max_calls=30, max_replans=0,
                             prover=ProverConfig(max_expansions=2, expansion_width=1))
    out = await prove_theorem(THM, env, [knows_1, knows_2], TOK, config,
                              planner=ScriptedPlanner([[("h1", "S1"), ("h2", "S2")]]))
    assert not out.proved and out.cache_hits == 0
    assert out.meter.usage.calls == 30  # the shared budget, spent in full


async def test_stuck_subgoal_triggers_replan_after_the_proven_ones():
    env = GraphEnv({**EDGES, ("A+h1+h3", "fin"): (), ("S3", "p3"): ()})
    policy = ScriptedPolicy({"S1": [("p1", -0.1)], "S3": [("p3", -0.1)], "A+h1+h3": [("fin", -0.1)]})
    planner = ScriptedPlanner([[("h1", "S1"), ("h2", "HARD")], [("h3", "S3")]])
    config = BfsProverConfig(num_agents=1, planner=True, max_calls=40, stuck_attempts=2,
                             prover=ProverConfig(max_expansions=1, expansion_width=1))
    out = await prove_theorem(THM, env, policy, TOK, config, planner=planner)
    assert out.proved and out.entry.replans == 1
    assert planner.calls[1] == ([("h1", "S1")], ("h2", "HARD"))
    assert out.entry.plan == [("h1", "S1"), ("h3", "S3")]


async def test_budget_is_shared_by_all_agents():
    # Equal budgets (issue 13 bench): 4 concurrent agents never overshoot the theorem's calls.
    env = GraphEnv({("A", "x"): ("B",), ("B", "x"): ("C",), ("C", "x"): ("D",)})
    for n in (1, 4):
        policy = ScriptedPolicy({g: [("x", -0.1)] for g in "ABCDE"})
        out = await prove_theorem(THM, env, policy, TOK, BfsProverConfig(num_agents=n, max_calls=13))
        assert not out.proved and out.meter.usage.calls == 13 and len(policy.requests) == 13


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="num_agents"):
        BfsProverConfig(num_agents=0)


async def test_local_cache_is_awaitable_and_copies():
    cache = LocalProofCache(GraphEnv(EDGES))
    entry = await cache.register(THM, [("h1", "S1")])
    entry.progress = 5
    assert await cache.progress("t") == 0
    assert (await cache.update("t", 0, StepProof(["p1"]))).accepted
    assert await cache.prefix("t", 1) == ["assert (h1 : S1)", "p1"]


async def test_a_prefix_that_no_longer_replays_is_logged_and_the_trace_still_builds():
    env = GraphEnv({})
    env.run = lambda th, tactics: TacticResult(TacticStatus.ERROR, error="worker lost")
    out = await prove_theorem(THM, env, ScriptedPolicy({}), TOK, BfsProverConfig(num_agents=2, max_calls=4))
    assert not out.proved and [a["status"] for a in out.attempts] == ["prefix_failed"] * 2
    trace = out.to_result().to_trace(Problem("t", "A"))
    assert trace.extra["attempts"][0]["error"] == "worker lost"
