"""Replicas as Ray actors (issue 26 §2) on a simulated two-node cluster (ray.cluster_utils),
with fake OpenAI-compatible servers in the actors: the orchestration is what is tested (a
killed actor restarts and its new endpoint rejoins, a removed node's replica moves to a node
with room, requests in flight are re-issued, nothing is lost)."""

from __future__ import annotations

import asyncio
import os

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from benchmarks.fake_server import start_fake  # noqa: E402
from models.client import VLLMClient  # noqa: E402
from models.ray_replicas import ray_replicas  # noqa: E402
from models.server import ServerSettings  # noqa: E402
from ponder.config import RayClusterConfig  # noqa: E402
from search.protocols import Affinity, problem_affinity  # noqa: E402

MB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 80 * MB})
    nodes = [c.add_node(num_cpus=1, object_store_memory=80 * MB) for _ in range(2)]
    ray.init(address=c.address, log_to_driver=False)
    yield c, nodes
    ray.shutdown()
    c.shutdown()


async def problem(client: VLLMClient, key: str, steps: int, replies: list) -> None:
    affinity = Affinity(key)
    problem_affinity.set(affinity)  # as the scheduler does
    for i in range(steps):
        c = await client.complete([1, 2, 3, i], max_tokens=4)
        replies.append((key, c.endpoint, c.choices[0].token_ids))
        await asyncio.sleep(0.01)
    affinity.open = False


async def test_a_killed_replica_actor_restarts_rejoins_and_its_requests_are_reissued(cluster):
    c, nodes = cluster
    events: list[dict] = []
    cfg = RayClusterConfig(address="auto", replicas=2, cpus_per_replica=1, max_restarts=2)
    with ray_replicas(cfg, ServerSettings(), start=start_fake, call_timeout_s=60, on_event=events.append) as reps:
        infos = reps.info()
        assert len({i["node_id"] for i in infos}) == 2  # spread: one replica per node
        client = VLLMClient(reps.endpoints(), "fake", restart_fns=reps.restart_fns(), on_event=events.append,
                            backoff_s=0.01, max_retries=1, outage_timeout_s=60)
        replies: list = []
        work = [asyncio.create_task(problem(client, f"p{i}", 40, replies)) for i in range(6)]
        await asyncio.sleep(0.3)
        victim = reps.names[0]
        ray.kill(reps.actors[0], no_restart=False)  # the actor (and with it its server) dies; Ray restarts it
        await asyncio.gather(*work)
        assert len(replies) == 6 * 40  # every request answered, none lost
        for _ in range(300):  # the survivor may have finished the work before the restart did
            if client.breaker.states[victim].up:
                break
            await asyncio.sleep(0.1)
        after = reps.info()
        assert after[0]["pid"] != infos[0]["pid"]  # a new server in the restarted actor
        assert not _alive(infos[0]["pid"])  # the dead actor's server is gone
        kinds = [e["event"] for e in events if e["endpoint"] == victim]
        assert kinds[0] == "outage" and "restart" in kinds and "recovered" in kinds
        assert kinds.index("replica_rejoined") < kinds.index("recovered")  # Ray's side, then the breaker's
        assert next(e for e in events if e["event"] == "replica_rejoined")["url"] == after[0]["endpoint"]
        assert any(e["event"] == "reissued" for e in events)
        assert client.breaker.states[victim].up and client.breaker.url(victim) == after[0]["endpoint"]
        assert {e for _, e, _ in replies} <= set(reps.names)
        # the rejoined replica serves again: new problems are bound to both replicas
        fresh: list = []
        await asyncio.gather(*(problem(client, f"q{i}", 3, fresh) for i in range(2)))
        assert {e for _, e, _ in fresh} == set(reps.names)
        await client.aclose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


async def test_a_removed_node_s_replica_moves_to_a_node_with_room(cluster):
    c, nodes = cluster
    events: list[dict] = []
    cfg = RayClusterConfig(address="auto", replicas=2, cpus_per_replica=1, max_restarts=1)
    with ray_replicas(cfg, ServerSettings(), start=start_fake, call_timeout_s=90) as reps:
        infos = reps.info()
        spare = c.add_node(num_cpus=1, object_store_memory=80 * MB)  # room for the moved replica
        victim_node = next(n for n in c.list_all_nodes() if n.node_id == infos[0]["node_id"])
        client = VLLMClient(reps.endpoints(), "fake", restart_fns=reps.restart_fns(), on_event=events.append,
                            backoff_s=0.01, max_retries=1, outage_timeout_s=90)
        replies: list = []
        work = [asyncio.create_task(problem(client, f"p{i}", 30, replies)) for i in range(4)]
        await asyncio.sleep(0.3)
        c.remove_node(victim_node)  # the whole node: raylet, actor, server
        await asyncio.gather(*work)
        assert len(replies) == 4 * 30
        # Under load the breaker may see a second outage while Ray restarts the actor, and it
        # learns of a server gone idle only from the next request: keep a little traffic on the
        # replica until it is up at the endpoint its actor reports now (the new endpoint rejoined).
        for i in range(600):
            try:
                after = reps.info()
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError):
                await asyncio.sleep(0.1)  # asked while Ray restarts the actor (the work ended first)
                continue
            if client.breaker.states[reps.names[0]].up and client.breaker.url(reps.names[0]) == after[0]["endpoint"]:
                break
            await problem(client, f"probe{i}", 1, [])
            await asyncio.sleep(0.1)
        assert after[0]["node_id"] == spare.node_id  # Ray placed the restarted actor on the spare node
        assert client.breaker.url(reps.names[0]) == after[0]["endpoint"]
        kinds = [e["event"] for e in events if e["endpoint"] == reps.names[0] and e["event"] != "reissued"]
        assert kinds[0] == "outage" and kinds[-1] == "recovered" and "failed" not in kinds, events
        assert not [e for e in events if e["endpoint"] == reps.names[1] and e["event"] == "failed"], events
        await client.aclose()
    nodes.append(spare)


class _Actor:
    class ensure:  # noqa: N801 - mimics an actor method handle
        @staticmethod
        def remote() -> str:
            return "ref"


def test_recover_waits_for_a_restarting_actor_and_gives_up_on_a_dead_one(monkeypatch):
    """A restarting actor (ActorUnavailableError while its new server starts) is waited for
    until the start-up timeout, however many polls that takes; an actor that keeps dying is
    given up after ``attempts`` deaths (seen: five quick polls, 23 s, failed a replica whose
    new vLLM server needed a minute)."""
    from models.ray_replicas import RayReplicas
    from search.protocols import EngineFault

    events = []
    replicas = RayReplicas([_Actor()], [{"endpoint": "http://n:1", "model": "m", "checkpoint": ""}], attempts=2,
                           call_timeout_s=30.0, on_event=events.append)
    monkeypatch.setattr("models.ray_replicas.time.sleep", lambda s: None)
    answers = [ray.exceptions.ActorUnavailableError("restarting", None)] * 12 + ["http://n:2"]

    def get(ref, timeout=None):
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    monkeypatch.setattr(ray, "get", get)
    monkeypatch.setattr(ray, "wait", lambda refs, timeout=None: (list(refs), []))
    assert replicas.recover(0) == "http://n:2"
    assert [e["event"] for e in events] == ["replica_rejoined"]

    answers[:] = [ray.exceptions.ActorDiedError()] * 3
    with pytest.raises(EngineFault, match="max_restarts"):
        replicas.recover(0)
    assert len(answers) == 1  # gave up after two deaths


def test_a_restart_in_flight_makes_no_ray_call_once_the_replicas_are_closed(monkeypatch):
    """After ``ray.shutdown`` any Ray call starts a new local Ray (auto-init): a breaker's
    restart still waiting in its thread when the run ended did (its agents outlived the run)."""
    import threading
    import time

    from models.ray_replicas import RayReplicas
    from search.protocols import EngineFault

    replicas = RayReplicas([_Actor()], [{"endpoint": "http://n:1", "model": "m", "checkpoint": ""}],
                           call_timeout_s=60.0)
    replicas.poll_s = 0.05
    calls: list[str] = []

    def wait(refs, num_returns=1, timeout=None):
        calls.append("wait")
        time.sleep(timeout or 0)
        return [], list(refs)  # the restarted server never comes up

    monkeypatch.setattr(ray, "wait", wait)
    monkeypatch.setattr(ray, "get", lambda *a, **k: calls.append("get"))
    monkeypatch.setattr(ray, "kill", lambda *a, **k: calls.append("kill"))
    outcome: list[BaseException] = []

    def restart() -> None:
        try:
            replicas.recover(0)
        except BaseException as e:  # noqa: BLE001 - the test reads it
            outcome.append(e)

    thread = threading.Thread(target=restart)
    thread.start()
    time.sleep(0.3)
    assert calls and set(calls) == {"wait"}  # waiting for the actor
    replicas.close(ready_s=0.01, stop_s=0.01)
    made = len(calls)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(calls) == made  # nothing after close
    assert isinstance(outcome[0], EngineFault) and "closed" in str(outcome[0])


class _SlowRestart:
    """Starts fake servers for the first ``fast`` calls (one per replica), then starts nothing
    for 300 s: a restarted actor stays in its start-up, as one starting a vLLM server does."""

    def __init__(self, marks: str, fast: int) -> None:
        self.marks, self.fast = marks, fast

    def __call__(self, settings):
        import pathlib
        import time
        import uuid

        marks = pathlib.Path(self.marks)
        (marks / uuid.uuid4().hex).touch()
        if len(list(marks.iterdir())) > self.fast:
            time.sleep(300)
        return start_fake(settings)


def test_close_does_not_wait_for_an_actor_still_starting(cluster, tmp_path):
    """An actor restarting its dead server (``ensure``, as the breaker's restart asks) answers
    nothing else until the new server is up (minutes for vLLM; close waited 30 s on it): close
    kills it at once, and still stops the ready replica's server before it returns."""
    import signal
    import sys
    import time

    from ray import cloudpickle

    from models.processes import pid_running

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _SlowRestart, for Ray's workers
    try:
        cfg = RayClusterConfig(address="auto", replicas=2, cpus_per_replica=1, max_restarts=1)
        start = _SlowRestart(str(tmp_path), fast=2)
        with ray_replicas(cfg, ServerSettings(), start=start, call_timeout_s=60) as reps:
            infos = reps.info()
            os.kill(infos[0]["pid"], signal.SIGKILL)  # replica 0's server dies
            restarting = reps.actors[0].ensure.remote()  # its actor starts another, which never comes up
            for _ in range(300):
                if len(list(tmp_path.iterdir())) > 2:
                    break
                time.sleep(0.1)
            assert len(list(tmp_path.iterdir())) == 3  # the actor is in the new server's start-up
            closing = time.monotonic()
        took = time.monotonic() - closing
        assert took < 15, f"close took {took:.1f} s"
        assert not pid_running(infos[1]["pid"])  # the ready replica's server was stopped before close returned
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(restarting, timeout=30)  # killed, not left starting
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
