"""Node-level failures vs engine faults (issue 8 §1), and the clock paused during outages."""

import asyncio
import time

import pytest

from search.algorithms import (
    BestFirstConfig,
    BestOfNConfig,
    CotConfig,
    DvtsConfig,
    MctsConfig,
    SelfConsistencyConfig,
    StepBeamConfig,
    run_search,
)
from search.context import Budget
from search.protocols import EngineFault, Problem
from search.scheduler import solve_all, solve_one
from search_fakes import Cand, ScriptedPolicy, ScriptedRewardModel, chat_prompt, make_ctx

CHAINS = {
    (): [Cand("a\n\n"), Cand("b\n\n")],
    ("a\n\n",): [Cand("So ANSWER:1", finish="eos")],
    ("b\n\n",): [Cand("So ANSWER:2", finish="eos")],
}
ALL = [CotConfig(), SelfConsistencyConfig(num_samples=2), BestOfNConfig(num_samples=2),
       StepBeamConfig(beam_width=2, num_children=2), DvtsConfig(num_samples=2, subtree_width=2),
       BestFirstConfig(expansion_width=2), MctsConfig(num_simulations=4, num_children=2)]
GONE = EngineFault("http://fake:1", "connection refused; restart limit reached")


@pytest.mark.parametrize("config", ALL, ids=lambda c: c.algorithm)
async def test_an_engine_fault_is_never_a_search_result(config):
    # The engine goes away on the first request after the root's: no search may turn that
    # into an errored node and an answer-less result.
    ctx = make_ctx(CHAINS, reward_model=ScriptedRewardModel(),
                   policy_kwargs={"fail_on": lambda steps: True, "fault": GONE})
    with pytest.raises(EngineFault):
        await run_search(ctx, config)
    assert all(n.error is None for n in ctx.tree.nodes)


@pytest.mark.parametrize("config", [StepBeamConfig(beam_width=2, num_children=2),
                                    MctsConfig(num_simulations=6, num_children=2, value="prior")],
                         ids=lambda c: c.algorithm)
async def test_a_node_failure_marks_the_node_and_the_search_goes_on(config):
    ctx = make_ctx(CHAINS, policy_kwargs={"fail_on": lambda steps: steps == ("a\n\n",)})
    result = await run_search(ctx, config)
    errored = [n for n in ctx.tree.nodes if n.error is not None]
    assert errored and all(n.text == "a\n\n" for n in errored)
    assert result.answer == "2"  # the other branch finished


async def test_reward_model_engine_fault_propagates():
    ctx = make_ctx(CHAINS, reward_model=ScriptedRewardModel())

    async def gone(problem, paths, first=None):
        raise GONE

    ctx.reward_model.score = gone
    with pytest.raises(EngineFault):
        await run_search(ctx, StepBeamConfig(beam_width=2, num_children=2))


async def test_solve_all_stops_on_an_engine_fault_and_records_only_finished_problems():
    problems = [Problem(f"p{i}", f"q{i}") for i in range(6)]
    calls = {"n": 0}

    def fail_on(steps):
        calls["n"] += 1
        return calls["n"] > 4  # the first few requests succeed, then the engine is gone

    policy = ScriptedPolicy(CHAINS, None, fail_on=fail_on, fault=GONE)
    recorded = []
    with pytest.raises(EngineFault):
        await solve_all(problems, lambda p: make_ctx(CHAINS, question=p.question, problem_id=p.id, policy=policy),
                        SelfConsistencyConfig(num_samples=2), 2, lambda p, o: recorded.append((p.id, o)))
    assert recorded and all(not isinstance(o, Exception) and o.answer for _, o in recorded)
    assert len(recorded) < len(problems)  # the rest stay unfinished, to be resumed


async def test_the_wall_clock_stops_while_the_engine_is_down():
    outage = {"s": 0.0}
    ctx = make_ctx(CHAINS, budget=Budget(max_wall_seconds=0.2))
    ctx.pause_clock = lambda: outage["s"]
    ctx.start_clock()
    await asyncio.sleep(0.25)
    assert ctx.exhausted()
    outage["s"] += 0.2  # the last 0.2 s the engine was being restarted
    assert not ctx.exhausted() and 0.0 < ctx.elapsed() < 0.1
    assert ctx.paused_seconds() == pytest.approx(0.2)


async def test_solve_one_does_not_cut_a_search_short_for_an_outage():
    outage = {"since": None}

    def outage_seconds():  # like CircuitBreaker.outage_seconds: grows while the engine is down
        since = outage["since"]
        return 0.0 if since is None else min(time.perf_counter() - since, 0.3)

    class DownForAWhile(ScriptedPolicy):
        async def propose(self, prefix, sampling):
            outage["since"] = time.perf_counter()
            await asyncio.sleep(0.3)  # waiting for the server to come back
            return await super().propose(prefix, sampling)

    ctx = make_ctx(CHAINS, budget=Budget(max_wall_seconds=0.1), policy=DownForAWhile(CHAINS, chat_prompt("What is 2+2?")))
    ctx.pause_clock = outage_seconds
    result = await solve_one(ctx, CotConfig(), grace_seconds=0.05)
    assert result.answer == "1" and not result.extra.get("timed_out")
    assert result.extra["paused_seconds"] == pytest.approx(0.3, abs=0.01)
