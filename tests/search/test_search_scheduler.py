"""solve_all: concurrent problems over one bounded pipe, failures recorded, wall budgets."""

import asyncio

import pytest

from search.algorithms import MctsConfig, SelfConsistencyConfig
from search.context import Budget
from search.protocols import ConfigError, Problem
from search.scheduler import BoundedPolicy, BoundedRewardModel, solve_all
from search_fakes import Cand, ScriptedPolicy, ScriptedRewardModel, make_ctx


def script(steps):
    if steps and steps[0] == "explode\n\n":
        raise RuntimeError("bug in a scripted problem")
    if len(steps) >= 2:
        return [Cand(f"ANSWER:{len(steps)}", finish="eos")]
    return [Cand(f"s{len(steps)}\n\n")]


def problems(n):
    return [Problem(id=f"p{i}", question=f"Question {i}?") for i in range(n)]


async def test_problems_run_concurrently_through_one_bounded_pipe():
    engine = ScriptedPolicy(script, None, latency=0.01)
    pipe = BoundedPolicy(engine, max_in_flight=3)
    rm = BoundedRewardModel(ScriptedRewardModel(), max_in_flight=2)
    seen = []

    def make(problem):
        return make_ctx(script, question=problem.question, problem_id=problem.id, policy=pipe, reward_model=rm)

    async def on_result(problem, outcome):
        seen.append((problem.id, outcome.answer))

    outcomes = await solve_all(problems(6), make, SelfConsistencyConfig(num_samples=2), 4, on_result)
    assert [o.answer for o in outcomes] == ["2"] * 6
    assert sorted(seen) == [(f"p{i}", "2") for i in range(6)]
    assert 1 < pipe.peak_in_flight <= 3 and engine.peak_in_flight <= 3
    assert pipe.in_flight == 0
    assert all(o.extra["bookkeeping_seconds"] >= 0 and o.extra["model_wait_seconds"] > 0 for o in outcomes)


async def test_one_failing_problem_is_recorded_and_the_run_goes_on():
    engine = ScriptedPolicy(lambda steps: [Cand("explode\n\n")] if not steps else script(steps), None)
    calls = []

    def make(problem):
        if problem.id == "p1":
            raise ValueError("cannot build this one")
        policy = engine if problem.id == "p2" else ScriptedPolicy(script, None)
        return make_ctx(script, question=problem.question, problem_id=problem.id, policy=policy)

    outcomes = await solve_all(problems(4), make, SelfConsistencyConfig(num_samples=1), 2, lambda p, o: calls.append(p.id))
    assert isinstance(outcomes[1], ValueError) and isinstance(outcomes[2], RuntimeError)
    assert outcomes[0].answer == outcomes[3].answer == "2"
    assert sorted(calls) == ["p0", "p1", "p2", "p3"]


async def test_wall_budget_cancels_a_stuck_problem_with_a_partial_result():
    stuck = ScriptedPolicy(script, None, latency=30.0)

    def make(problem):
        return make_ctx(script, question=problem.question, policy=stuck, budget=Budget(max_wall_seconds=0.05))

    start = asyncio.get_running_loop().time()
    [outcome] = await solve_all(problems(1), make, MctsConfig(num_simulations=5, value="prior"), 1, grace_seconds=0.05)
    assert asyncio.get_running_loop().time() - start < 2.0
    assert outcome.extra["timed_out"] and outcome.answer is None and outcome.config["algorithm"] == "mcts"
    assert all(n.virtual_loss == 0 for n in outcome.tree)


async def test_bad_limits_are_config_errors():
    with pytest.raises(ConfigError):
        BoundedPolicy(ScriptedPolicy(script, None), 0)
    with pytest.raises(ConfigError):
        await solve_all([], lambda p: None, SelfConsistencyConfig(), 0)


async def test_recording_a_result_does_not_hold_up_the_next_search():
    """With one problem at a time, p1's search starts while p0 is still being recorded; the
    run returns only after every result is recorded; a failing on_result stops the run."""
    started, recorded = [], []
    p0_recording = asyncio.Event()
    p1_started = asyncio.Event()

    def make(problem):
        started.append(problem.id)
        if problem.id == "p1":
            p1_started.set()
        return make_ctx(script, question=problem.question, problem_id=problem.id)

    async def on_result(problem, outcome):
        if problem.id == "p0":
            p0_recording.set()
            await asyncio.wait_for(p1_started.wait(), 5)  # would deadlock if recording blocked the worker
        recorded.append(problem.id)

    await solve_all(problems(3), make, SelfConsistencyConfig(num_samples=1), 1, on_result)
    assert p0_recording.is_set() and sorted(recorded) == ["p0", "p1", "p2"]

    async def failing(problem, outcome):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await solve_all(problems(3), make, SelfConsistencyConfig(num_samples=1), 1, failing)


async def test_each_problem_carries_one_affinity_into_its_requests_and_recording():
    from search.protocols import problem_affinity

    seen: dict[str, set] = {}

    class Spy(ScriptedPolicy):
        async def propose(self, prefix, sampling):
            affinity = problem_affinity.get()
            seen.setdefault(affinity.key, set()).add(id(affinity))
            assert affinity.open
            return await super().propose(prefix, sampling)

    pipe = BoundedPolicy(Spy(script, None, latency=0.001), max_in_flight=4)
    recorded = {}

    def make(problem):
        return make_ctx(script, question=problem.question, problem_id=problem.id, policy=pipe)

    async def on_result(problem, outcome):
        affinity = problem_affinity.get()
        assert affinity.key == problem.id and affinity.open  # labelling still routes with the problem
        await asyncio.sleep(0)
        recorded[problem.id] = affinity

    await solve_all(problems(5), make, SelfConsistencyConfig(num_samples=3), 2, on_result)
    assert sorted(seen) == [f"p{i}" for i in range(5)] and all(len(ids) == 1 for ids in seen.values())
    assert all(not a.open for a in recorded.values())  # closed once recorded: the binding may go
