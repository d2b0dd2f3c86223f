"""Adaptive in-tree parallelism: the engine's occupancy, grants only while it is under-filled,
never above the bound, virtual loss undone on every path, and the parallelism in traces."""

import asyncio

import pytest

from search.algorithms import MctsConfig, RestMctsConfig, parse_algorithm_config, run_search
from search.budget import Budget, Meter
from search.occupancy import Occupancy
from search.protocols import ConfigError, EngineFault, Problem, Usage
from search.scheduler import BoundedPolicy, solve_all
from search.steps import StepFormat
from search_fakes import Cand, ScriptedPolicy, ScriptedRewardModel, make_ctx


def wide(steps):
    """Three distinct steps per node, an answer at depth 5: plenty of leaves to run at once."""
    if len(steps) >= 4:
        return [Cand(f"done {len(steps)} ANSWER:{len(steps)}", -0.2, "eos")] * 3
    return [Cand(f"s{len(steps)}{k}.\n\n", -0.1 * (k + 1)) for k in range(3)]


ADAPTIVE = MctsConfig(num_simulations=12, num_children=3, value="prior", num_parallel=1,
                      adaptive_parallel=True, max_parallel=4)


class SpyOccupancy(Occupancy):
    """Records the load seen by every grant request and whether it was granted."""

    def __init__(self, target):
        super().__init__(target)
        self.asks = []

    def grant(self, size=1):
        load = self.load
        lease = super().grant(size)
        self.asks.append((load, size, lease is not None))
        return lease


def no_virtual_loss(tree):
    return all(n.virtual_loss == 0 for n in tree.nodes)


def test_occupancy_grants_within_the_target_and_settles():
    occ = Occupancy(target=6)
    first = occ.grant(3)
    assert first is not None and occ.load == 3 and occ.headroom() == 3
    assert occ.grant(4) is None  # 3 + 4 > 6
    second = occ.grant(3)
    assert second is not None and occ.grant(1) is None
    first.settle()
    first.settle()  # idempotent
    assert occ.load == 3 and occ.granted == 2
    occ.enter(2)
    occ.leave(2)
    assert occ.in_flight == 0 and occ.peak_in_flight == 2
    with pytest.raises(ConfigError, match="target_in_flight"):
        Occupancy(0)


async def test_a_request_settles_its_tasks_lease():
    occ = Occupancy(target=4)
    lease = occ.grant(2)

    async def granted():
        lease.bind()
        occ.enter(2)  # the request reaches the gate: promised -> in flight
        assert occ.load == 2 and lease.settled
        occ.leave(2)

    await asyncio.ensure_future(granted())
    assert occ.load == 0


async def test_a_lone_tree_widens_up_to_the_bound_when_the_engine_is_under_filled():
    engine = ScriptedPolicy(wide, None, latency=0.01)
    pipe = BoundedPolicy(engine, max_in_flight=64, target_in_flight=64)
    ctx = make_ctx(wide, policy=pipe)
    result = await run_search(ctx, ADAPTIVE)
    par = result.extra["parallel"]
    assert par["adaptive"] and par["floor"] == 1 and par["bound"] == 4
    assert par["max_in_flight"] == 4 and par["extra"] > 0 and 1 < par["mean_in_flight"] <= 4
    assert engine.peak_in_flight <= 4  # one request per simulation, never above the bound
    assert result.extra["simulations"] == 12 and result.config["adaptive_parallel"] is True
    assert no_virtual_loss(ctx.tree) and pipe.occupancy.load == 0


async def test_a_full_engine_gives_no_extra_simulations():
    engine = ScriptedPolicy(wide, None, latency=0.01)
    pipe = BoundedPolicy(engine, max_in_flight=64, target_in_flight=3)  # one request of 3 fills it
    ctx = make_ctx(wide, policy=pipe)
    result = await run_search(ctx, ADAPTIVE)
    par = result.extra["parallel"]
    assert par["extra"] == 0 and par["max_in_flight"] == 1 and engine.peak_in_flight == 1


async def test_adaptive_off_keeps_num_parallel_and_the_same_tree():
    trees = []
    for config in (MctsConfig(num_simulations=12, num_children=3, value="prior"),
                   MctsConfig(num_simulations=12, num_children=3, value="prior", adaptive_parallel=True)):
        pipe = BoundedPolicy(ScriptedPolicy(wide, None), max_in_flight=64, target_in_flight=3)
        ctx = make_ctx(wide, policy=pipe)
        result = await run_search(ctx, config)
        trees.append([(n.parent, n.text, n.visits) for n in ctx.tree.nodes])
        assert result.extra["parallel"]["max_in_flight"] == 1
    # adaptive on an engine that is never under-filled runs exactly what num_parallel runs
    assert trees[0] == trees[1]


def even(steps):
    """Three distinct 6-token steps per node, never an answer: a request of n samples generates 6n tokens."""
    return [Cand(f"s{len(steps) % 10}{k}.\n\n", -0.1 * (k + 1)) for k in range(3)]


async def test_extra_simulations_never_overshoot_a_token_budget_the_floor_would_not():
    capped = MctsConfig(num_simulations=40, num_children=3, value="prior", num_parallel=1,
                        adaptive_parallel=True, max_parallel=4)
    engine = ScriptedPolicy(even, None, latency=0.01)
    pipe = BoundedPolicy(engine, max_in_flight=64, target_in_flight=64)
    ctx = make_ctx(even, policy=pipe, budget=Budget(max_generated_tokens=100), steps=StepFormat(max_depth=30))
    result = await run_search(ctx, capped)
    par = result.extra["parallel"]
    # it still widens, but not into the budget: the floor alone stops at 108 (6 calls of 18)
    assert par["extra"] > 0 and par["held_by_budget"] > 0
    assert 100 <= ctx.meter.usage.generated_tokens <= 100 + 18
    assert no_virtual_loss(ctx.tree) and pipe.occupancy.load == 0


def test_the_meter_projects_calls_in_flight_and_unsent_at_its_mean_tokens_a_call():
    meter = Meter(Budget(max_generated_tokens=100))
    assert not meter.would_reach(50)  # no finished call: no mean to project
    meter.add(Usage(generated_tokens=30, calls=1))
    assert not meter.would_reach(2)  # 30 + 2 x 30 = 90
    assert meter.would_reach(3)  # 30 + 3 x 30 = 120
    meter.in_flight = 1  # another caller's request (a concurrent DVTS subtree) counts too
    assert meter.would_reach(2)
    assert not Meter(Budget()).would_reach(1000)


async def test_the_context_counts_its_policy_calls_in_flight_on_its_meter():
    seen = []

    class Watching(ScriptedPolicy):
        async def propose(self, prefix, sampling):
            seen.append(ctx.meter.in_flight)
            return await super().propose(prefix, sampling)

    ctx = make_ctx(even, policy=Watching(even, None, latency=0.01))
    await asyncio.gather(ctx.expand(0, 3), ctx.expand(0, 3))
    assert sorted(seen) == [1, 2] and ctx.meter.in_flight == 0
    failing = make_ctx(even, policy=ScriptedPolicy(even, None, fail_on=lambda steps: True))
    await failing.expand(0, 3)  # a node-level failure
    assert failing.meter.in_flight == 0


async def test_grants_only_while_the_run_is_under_filled_and_trees_widen_as_they_finish():
    engine = ScriptedPolicy(wide, None, latency=0.005)
    pipe = BoundedPolicy(engine, max_in_flight=64)
    pipe.occupancy = spy = SpyOccupancy(target=6)
    problems = [Problem(id=f"p{i}", question=f"Q{i}?") for i in range(4)]

    def make(problem):
        return make_ctx(wide, question=problem.question, problem_id=problem.id, policy=pipe)

    outcomes = await solve_all(problems, make, ADAPTIVE, max_concurrent_problems=4)
    given = [(load, size) for load, size, ok in spy.asks if ok]
    refused = [(load, size) for load, size, ok in spy.asks if not ok]
    assert given and refused  # full while four trees ran, under-filled at times
    assert all(load + size <= 6 for load, size in given)  # only when under-filled
    assert all(load + size > 6 for load, size in refused)
    for o in outcomes:
        par = o.extra["parallel"]
        assert 1 <= par["max_in_flight"] <= 4 and par["bound"] == 4 and par["waits"] == 0
        assert par["extra"] <= o.extra["simulations"] - 1
    # floors always run (4 trees x 3 sequences, above the target); extras only in the room left
    assert spy.load == 0 and spy.peak_in_flight <= 4 * 3 + 6


async def test_virtual_loss_is_undone_when_nodes_fail():
    engine = ScriptedPolicy(wide, None, latency=0.005, fail_on=lambda steps: len(steps) == 2)
    ctx = make_ctx(wide, policy=BoundedPolicy(engine, 64, target_in_flight=64))
    result = await run_search(ctx, ADAPTIVE)
    assert any(n.error for n in ctx.tree.nodes) and result.extra["parallel"]["max_in_flight"] > 1
    assert no_virtual_loss(ctx.tree)


async def test_virtual_loss_is_undone_on_an_engine_fault_and_the_fault_propagates():
    engine = ScriptedPolicy(wide, None, latency=0.005, fail_on=lambda steps: len(steps) == 2,
                            fault=EngineFault("http://fake", "gone"))
    pipe = BoundedPolicy(engine, 64, target_in_flight=64)
    ctx = make_ctx(wide, policy=pipe)
    with pytest.raises(EngineFault):
        await run_search(ctx, ADAPTIVE)
    await asyncio.sleep(0.05)  # nothing left running behind the fault
    assert no_virtual_loss(ctx.tree) and pipe.occupancy.load == 0 and engine.in_flight == 0


async def test_virtual_loss_is_undone_when_the_search_is_cancelled():
    engine = ScriptedPolicy(wide, None, latency=0.05)
    pipe = BoundedPolicy(engine, 64, target_in_flight=64)
    ctx = make_ctx(wide, policy=pipe)
    task = asyncio.ensure_future(run_search(ctx, ADAPTIVE))
    while len(ctx.tree) < 4 or not any(n.virtual_loss for n in ctx.tree.nodes):  # caught mid-flight
        await asyncio.sleep(0.005)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert no_virtual_loss(ctx.tree) and pipe.occupancy.load == 0 and engine.in_flight == 0


async def test_rest_mcts_widens_too_and_records_it():
    engine = ScriptedPolicy(wide, None, latency=0.01)
    rm = ScriptedRewardModel(default=0.5)
    ctx = make_ctx(wide, policy=BoundedPolicy(engine, 64, target_in_flight=64), reward_model=rm)
    config = RestMctsConfig(num_iterations=10, branch=3, roll_forward_steps=0, adaptive_parallel=True, max_parallel=3)
    result = await run_search(ctx, config)
    par = result.extra["parallel"]
    assert par["adaptive"] and par["max_in_flight"] == 3 and par["bound"] == 3
    assert result.config["adaptive_parallel"] is True and result.config["max_parallel"] == 3
    assert no_virtual_loss(ctx.tree)


def chain(steps):
    """One step and two answers per node, all answers at depth 5: one live leaf at a time."""
    d = len(steps)
    answers = [Cand(f"end {d}{k} ANSWER:{k}", -0.3, "eos") for k in range(2)]
    return answers * 2 if d >= 4 else [Cand(f"c{d}.\n\n", -0.1), *answers]


async def test_no_simulation_is_parked_on_a_node_under_expansion_nor_granted_for_one():
    # One live leaf at a time: an adaptive tree waits for its expansion instead of starting
    # simulations that would wait on it while holding grants (sequences no request carries).
    engine = ScriptedPolicy(chain, None, latency=0.01)
    pipe = BoundedPolicy(engine, max_in_flight=64)
    pipe.occupancy = spy = SpyOccupancy(target=64)
    ctx = make_ctx(chain, policy=pipe)
    par = (await run_search(ctx, ADAPTIVE)).extra["parallel"]
    assert par["adaptive"] and par["no_free_leaf"] > 0 and par["waits"] == 0
    assert spy.asks == [] and par["extra"] == 0 and par["max_in_flight"] == 1 and engine.peak_in_flight == 1
    assert spy.load == 0 and no_virtual_loss(ctx.tree)
    # fixed num_parallel: its extra simulations do wait on the node being expanded
    ctx = make_ctx(chain, policy=BoundedPolicy(ScriptedPolicy(chain, None, latency=0.01), 64, target_in_flight=64))
    fixed = (await run_search(ctx, MctsConfig(num_simulations=12, num_children=3, value="prior",
                                              num_parallel=3))).extra["parallel"]
    assert not fixed["adaptive"] and fixed["waits"] > 0 and fixed["no_free_leaf"] == 0


def preferred(steps):
    """The root's first child far likelier than its two siblings; three steps below each."""
    if len(steps) >= 2:
        return [Cand(f"done ANSWER:{len(steps)}", -0.2, "eos")] * 3
    if not steps:
        return [Cand("A.\n\n", -0.01), Cand("B.\n\n", -6.0), Cand("C.\n\n", -6.0)]
    return [Cand(f"{steps[-1][0]}{k}.\n\n", -0.1 * (k + 1)) for k in range(3)]


async def test_a_simulation_takes_the_next_best_free_leaf_while_the_best_is_expanding():
    engine = ScriptedPolicy(preferred, None, latency=0.02)
    ctx = make_ctx(preferred, policy=BoundedPolicy(engine, 64, target_in_flight=64))
    config = MctsConfig(num_simulations=4, num_children=3, value="prior", adaptive_parallel=True, max_parallel=3)
    par = (await run_search(ctx, config)).extra["parallel"]
    # after the root, A (the best) is being expanded: the others go to B and C at once
    second_wave = [engine.steps_of(prefix) for prefix, _ in engine.requests[1:4]]
    assert sorted(second_wave) == [("A.\n\n",), ("B.\n\n",), ("C.\n\n",)]
    assert par["max_in_flight"] == 3 and engine.peak_in_flight == 3 and par["waits"] == 0
    assert no_virtual_loss(ctx.tree)


async def test_claims_and_leases_are_released_for_simulations_cancelled_before_they_began():
    # The loop claims a leaf (virtual loss, pending, its grant) when it starts a simulation's
    # task; a failure in the same step (here the next selection) cancels that task before it
    # ran a line, so the loop itself must release what the task would have.
    from search.backup import backup_fn
    from search.loop import LoopFns, run_simulations
    from search.selection import make_select_fn

    engine = ScriptedPolicy(wide, None, latency=0.01)
    pipe = BoundedPolicy(engine, 64, target_in_flight=64)
    ctx = make_ctx(wide, policy=pipe)
    puct, calls = make_select_fn("puct", 1.25), []

    def select_fn(tree, parent, live):
        calls.append(parent)
        if len(calls) == 2:
            raise RuntimeError("selection bug")
        return puct(tree, parent, live)

    async def evaluate_fn(children):
        return [0.5] * len(children)

    fns = LoopFns(select_fn=select_fn, expand_fn=lambda node: ctx.expand(node, 3), evaluate_fn=evaluate_fn,
                  backup_fn=backup_fn("mean"))
    with pytest.raises(RuntimeError, match="selection bug"):
        await run_simulations(ctx, fns, 8, 1, max_parallel=4, grant_size=3)
    assert len(engine.requests) == 1  # the root's; the claimed child's task never began
    assert no_virtual_loss(ctx.tree) and pipe.occupancy.load == 0


def test_max_parallel_below_num_parallel_is_refused_naming_the_fix():
    with pytest.raises(ConfigError, match="max_parallel"):
        parse_algorithm_config({"algorithm": "mcts", "num_simulations": 10, "num_parallel": 4, "max_parallel": 2})


# --- step beam: the adaptive frontier ---------------------------------------------------------

BEAM = dict(beam_width=2, num_children=3, score="prior")


async def test_beam_expands_below_beam_candidates_only_when_under_filled_and_within_max_width():
    from search.algorithms import StepBeamConfig

    engine = ScriptedPolicy(wide, None, latency=0.005)
    ctx = make_ctx(wide, policy=BoundedPolicy(engine, 64, target_in_flight=64))
    result = await run_search(ctx, StepBeamConfig(**BEAM, adaptive_parallel=True, max_width=5))
    par = result.extra["parallel"]
    assert par["adaptive"] and par["floor"] == 2 and par["bound"] == 5
    assert par["extra"] > 0 and par["max_in_flight"] == 5 and engine.peak_in_flight <= 5
    assert result.config["adaptive_parallel"] is True and ctx.occupancy.load == 0

    trees = []
    for config in (StepBeamConfig(**BEAM), StepBeamConfig(**BEAM, adaptive_parallel=True, max_width=5)):
        ctx = make_ctx(wide, policy=BoundedPolicy(ScriptedPolicy(wide, None), 64, target_in_flight=6))
        result = await run_search(ctx, config)  # the beam's own 2 x 3 sequences fill the engine
        assert result.extra["parallel"]["extra"] == 0 and result.extra["parallel"]["max_in_flight"] <= 2
        trees.append([(n.parent, n.text) for n in ctx.tree.nodes])
    assert trees[0] == trees[1]


async def test_beam_extra_nodes_never_overshoot_a_token_budget_the_beam_would_not():
    from search.algorithms import StepBeamConfig

    engine = ScriptedPolicy(even, None, latency=0.005)
    pipe = BoundedPolicy(engine, 64, target_in_flight=64)
    ctx = make_ctx(even, policy=pipe, budget=Budget(max_generated_tokens=150), steps=StepFormat(max_depth=30))
    result = await run_search(ctx, StepBeamConfig(**BEAM, adaptive_parallel=True, max_width=5))
    par = result.extra["parallel"]
    # 6 tokens a step: the root's request (6 samples) 36; level 2 takes one extra node while the
    # projection (36 a request so far) stays below 150: 3 requests, 90; then the beam's own 2 a level
    # (126, 162). With no projection, levels of 5 requests: 126, then 216.
    assert par["extra"] == 1 and par["held_by_budget"] >= 1
    assert ctx.meter.usage.generated_tokens == 162
    assert pipe.occupancy.load == 0


async def test_beam_leases_are_settled_on_an_engine_fault():
    from search.algorithms import StepBeamConfig

    engine = ScriptedPolicy(wide, None, latency=0.005, fail_on=lambda steps: len(steps) == 2,
                            fault=EngineFault("http://fake", "gone"))
    pipe = BoundedPolicy(engine, 64, target_in_flight=64)
    with pytest.raises(EngineFault):
        await run_search(make_ctx(wide, policy=pipe), StepBeamConfig(**BEAM, adaptive_parallel=True, max_width=5))
    await asyncio.sleep(0.05)
    assert pipe.occupancy.load == 0


# --- reward-model requests on the policy's server count in the fill ----------------------------


class SlowRewardModel(ScriptedRewardModel):
    """A judge with latency that records the engine's load seen while its calls run."""

    def __init__(self, latency, occupancy=None):
        super().__init__(default=0.5)
        self.latency = latency
        self.occupancy = occupancy
        self.in_flight = 0
        self.seen = []

    async def score(self, problem, paths, first=None):
        self.in_flight += 1
        try:
            if self.occupancy is not None:
                self.seen.append(self.occupancy.in_flight)
            await asyncio.sleep(self.latency)
            return await super().score(problem, paths, first)
        finally:
            self.in_flight -= 1


async def test_a_score_call_counts_one_sequence_per_distinct_step_prefix_while_in_flight():
    from search.scheduler import BoundedRewardModel

    occ = Occupancy(target=8)
    judge = SlowRewardModel(0.02, occupancy=occ)
    rm = BoundedRewardModel(judge, 4, occupancy=occ, sequences_per_step=2)
    problem = Problem(id="p", question="Q?")
    call = asyncio.ensure_future(rm.score(problem, [["a", "b"], ["a", "c"], ["a", "c"]], first=[1, 1, 1]))
    await asyncio.sleep(0.005)
    assert occ.in_flight == 4  # (a, b) and (a, c), n = 2 each; the duplicate path once
    assert occ.grant(5) is None and occ.grant(4) is not None  # the judge's sequences fill the engine
    await call
    assert occ.in_flight == 0 and rm.counted == 4 and judge.seen == [4]
    await rm.score(problem, [["a", "b"]])  # every step from the first: (a) and (a, b)
    assert rm.counted == 8

    judge.fail = True  # a failing call leaves the gate too
    with pytest.raises(Exception, match="scripted failure"):
        await rm.score(problem, [["a"]])
    assert occ.in_flight == 0

    alone = BoundedRewardModel(SlowRewardModel(0.0), 4)  # its own server: nothing counted
    await alone.score(problem, [["a", "b"]])
    assert alone.counted == 0 and occ.in_flight == 0
    with pytest.raises(ConfigError, match="sequences_per_step"):
        BoundedRewardModel(judge, 4, occupancy=occ, sequences_per_step=0)


async def test_judge_requests_on_the_same_server_hold_back_extra_simulations():
    from search.scheduler import BoundedRewardModel

    config = MctsConfig(num_simulations=12, num_children=3, value="reward_model", num_parallel=1,
                        adaptive_parallel=True, max_parallel=4)
    extras = {}
    for counted in (False, True):
        engine = ScriptedPolicy(wide, None, latency=0.002)
        pipe = BoundedPolicy(engine, max_in_flight=64)
        pipe.occupancy = spy = SpyOccupancy(target=6)
        judge = SlowRewardModel(0.03)
        rm = BoundedRewardModel(judge, 64, occupancy=spy if counted else None)
        ctx = make_ctx(wide, policy=pipe, reward_model=rm)
        result = await run_search(ctx, config)
        par = result.extra["parallel"]
        extras[counted] = par["extra"]
        assert par["max_in_flight"] <= 4 and no_virtual_loss(ctx.tree) and spy.load == 0
        assert all(load + size <= 6 for load, size, ok in spy.asks if ok)
        if counted:
            assert rm.counted > 0 and any(not ok for _, _, ok in spy.asks)
    # the judge's sequences (3 new children per evaluation) take the room extra simulations had
    assert extras[True] < extras[False]


# --- DVTS: each subtree's adaptive frontier ----------------------------------------------------

DVTS = dict(num_samples=6, subtree_width=3, score="prior")


async def test_dvts_subtrees_widen_only_when_under_filled_and_within_max_width():
    from search.algorithms import DvtsConfig

    engine = ScriptedPolicy(wide, None, latency=0.005)
    ctx = make_ctx(wide, policy=BoundedPolicy(engine, 64, target_in_flight=64))
    result = await run_search(ctx, DvtsConfig(**DVTS, adaptive_parallel=True, max_width=3))
    par = result.extra["parallel"]
    assert par["adaptive"] and par["floor"] == 2 and par["bound"] == 6 and len(par["subtrees"]) == 2
    assert par["extra"] > 0 and par["max_in_flight"] == 3 and engine.peak_in_flight <= 6
    assert all(s["max_in_flight"] <= 3 and s["bound"] == 3 for s in par["subtrees"])
    assert result.config["adaptive_parallel"] is True and result.config["max_width"] == 3
    assert ctx.occupancy.load == 0

    trees = []
    for config in (DvtsConfig(**DVTS), DvtsConfig(**DVTS, adaptive_parallel=True, max_width=3)):
        # a subtree's own next request (3 sequences, reserved before it asks) fills the engine
        ctx = make_ctx(wide, policy=BoundedPolicy(ScriptedPolicy(wide, None), 64, target_in_flight=3))
        result = await run_search(ctx, config)
        assert result.extra["parallel"]["extra"] == 0 and result.extra["parallel"]["max_in_flight"] == 1
        trees.append([(n.parent, n.text) for n in ctx.tree.nodes])
    assert trees[0] == trees[1]
    assert result.config["adaptive_parallel"] is True


async def test_dvts_adaptive_off_records_its_parallelism_and_a_fault_settles_its_leases():
    from search.algorithms import DvtsConfig

    ctx = make_ctx(wide, policy=BoundedPolicy(ScriptedPolicy(wide, None), 64, target_in_flight=64))
    par = (await run_search(ctx, DvtsConfig(**DVTS))).extra["parallel"]
    assert not par["adaptive"] and par["bound"] == par["floor"] == 2 and par["extra"] == 0

    engine = ScriptedPolicy(wide, None, latency=0.005, fail_on=lambda steps: len(steps) == 2,
                            fault=EngineFault("http://fake", "gone"))
    pipe = BoundedPolicy(engine, 64, target_in_flight=64)
    with pytest.raises(EngineFault):
        await run_search(make_ctx(wide, policy=pipe), DvtsConfig(**DVTS, adaptive_parallel=True))
    await asyncio.sleep(0.05)
    assert pipe.occupancy.load == 0 and engine.in_flight == 0


# --- best-first: more open nodes popped at once ------------------------------------------------


async def test_best_first_pops_more_only_when_under_filled_and_within_max_parallel():
    from search.algorithms import BestFirstConfig

    config = dict(expansion_width=3, max_expansions=12, max_terminals=3)
    engine = ScriptedPolicy(wide, None, latency=0.005)
    ctx = make_ctx(wide, policy=BoundedPolicy(engine, 64, target_in_flight=64))
    result = await run_search(ctx, BestFirstConfig(**config, adaptive_parallel=True, max_parallel=3))
    par = result.extra["parallel"]
    assert par["adaptive"] and par["floor"] == 1 and par["bound"] == 3
    assert par["extra"] > 0 and par["max_in_flight"] == 3 and engine.peak_in_flight <= 3
    assert len(result.extra["expansion_order"]) <= 12 and ctx.occupancy.load == 0
    assert result.config["adaptive_parallel"] is True and result.config["max_parallel"] == 3

    trees = []
    for c in (BestFirstConfig(**config), BestFirstConfig(**config, adaptive_parallel=True, max_parallel=3)):
        ctx = make_ctx(wide, policy=BoundedPolicy(ScriptedPolicy(wide, None), 64, target_in_flight=3))
        result = await run_search(ctx, c)  # the floor's one request of 3 fills the engine
        assert result.extra["parallel"]["extra"] == 0 and result.extra["parallel"]["max_in_flight"] == 1
        trees.append([(n.parent, n.text) for n in ctx.tree.nodes])
    assert trees[0] == trees[1]

    engine = ScriptedPolicy(wide, None, latency=0.005, fail_on=lambda steps: len(steps) == 2,
                            fault=EngineFault("http://fake", "gone"))
    pipe = BoundedPolicy(engine, 64, target_in_flight=64)
    with pytest.raises(EngineFault):
        await run_search(make_ctx(wide, policy=pipe), BestFirstConfig(**config, adaptive_parallel=True))
    await asyncio.sleep(0.05)
    assert pipe.occupancy.load == 0 and engine.in_flight == 0
    with pytest.raises(ConfigError, match="max_parallel"):
        parse_algorithm_config({"algorithm": "best_first", "num_parallel": 4, "max_parallel": 2})


async def test_best_first_extra_pops_never_overshoot_a_token_budget_the_floor_would_not():
    from search.algorithms import BestFirstConfig

    pipe = BoundedPolicy(ScriptedPolicy(even, None, latency=0.005), 64, target_in_flight=64)
    ctx = make_ctx(even, policy=pipe, budget=Budget(max_generated_tokens=100), steps=StepFormat(max_depth=30))
    config = BestFirstConfig(expansion_width=3, max_expansions=40, adaptive_parallel=True, max_parallel=3)
    result = await run_search(ctx, config)
    par = result.extra["parallel"]
    # 18 tokens a request: the root 18, a round of 3 (to 72), then one a round (90, 108);
    # with no projection the third round would pop 3 too (126)
    assert par["extra"] == 2 and par["held_by_budget"] >= 1
    assert ctx.meter.usage.generated_tokens == 108 and pipe.occupancy.load == 0
