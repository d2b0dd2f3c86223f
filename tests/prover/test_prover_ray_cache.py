"""The Ray actor cache behaves like the in-process one (spec 04 §4; local Ray)."""

from __future__ import annotations

import functools

import pytest

ray = pytest.importorskip("ray", reason="Ray cache test skipped: ray is not installed (pip install ray)")

import prover_fakes  # noqa: E402
from prover_fakes import CharTokenizer, GraphEnv, ScriptedPlanner, ScriptedPolicy  # noqa: E402

from ponder.ray_cache import RayProofCache  # noqa: E402
from search.protocols import Theorem  # noqa: E402
from search.prover.agents import BfsProverConfig, prove_theorem  # noqa: E402
from search.prover.bfs import ProverConfig  # noqa: E402
from search.prover.cache import LocalProofCache, StepProof  # noqa: E402

EDGES = {("S1", "p1"): (), ("S2", "p2"): (), ("A+h1+h2", "fin"): ()}
THM = Theorem("t", "A")


make_env = functools.partial(GraphEnv, EDGES)  # picklable: the fakes module travels by value


@pytest.fixture(scope="module")
def ray_session():
    ray.cloudpickle.register_pickle_by_value(prover_fakes)  # the fakes travel to the actor
    from ponder.ray_cache import init_ray

    init_ray()
    yield
    ray.shutdown()


async def _script(cache) -> list:
    out = [await cache.register(THM, [("h1", "S1"), ("h2", "S2")])]
    for step, tactic in ((1, "p2"), (0, "p2"), (0, "p1"), (0, "p1"), (1, "p2")):
        out.append(await cache.update("t", step, StepProof([tactic], agent=step)))
    out += [await cache.progress("t"), await cache.prefix("t", 2), await cache.replan("t", 0, [("x", "S")]),
            await cache.update("t", 2, StepProof(["fin"])), await cache.entry("t")]
    return out


async def test_ray_cache_answers_like_the_local_one(ray_session):
    local = await _script(LocalProofCache(make_env()))
    remote_cache = RayProofCache(make_env)
    remote = await _script(remote_cache)
    assert remote == local
    assert [r.accepted for r in local[1:6]] == [False, False, True, False, True]
    assert local[-1].final == ["assert (h1 : S1)", "p1", "assert (h2 : S2)", "p2", "fin"]
    remote_cache.close()


async def test_agents_over_the_ray_cache(ray_session):
    knows_1 = ScriptedPolicy({"S1": [("p1", -0.1)], "S2": [("junk", -0.1)], "A+h1+h2": [("fin", -0.1)]})
    knows_2 = ScriptedPolicy({"S1": [("junk", -0.1)], "S2": [("p2", -0.1)], "A+h1+h2": [("fin", -0.1)]})
    config = BfsProverConfig(num_agents=2, planner=True, max_calls=60, max_replans=0,
                             prover=ProverConfig(max_expansions=2, expansion_width=1))
    out = await prove_theorem(THM, make_env(), [knows_1, knows_2], CharTokenizer(), config,
                              cache_factory=lambda: RayProofCache(make_env),
                              planner=ScriptedPlanner([[("h1", "S1"), ("h2", "S2")]]))
    assert out.proved and [p.agent for p in out.entry.proofs] [:2] == [0, 1] and out.cache_hits >= 1
