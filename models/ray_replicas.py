"""vLLM replicas on a Ray cluster: one Ray actor per replica, the driver sends over HTTP.

``model.cluster: {kind: ray, address, replicas, gpus_per_replica}`` makes ``ponder run``
(and every command that opens an engine from a ``model`` block) start ``replicas`` Ray actors
(:class:`ReplicaActor`). Each starts a vLLM server on its node (listening on all interfaces,
its GPUs the ones Ray gave the actor) and reports ``http://NODE_IP:PORT``. The driver, the
same single asyncio process with the same scheduler, sends its requests to those endpoints
(:class:`~models.client.VLLMClient`, tree-affine routing) and Ray does the placement.

A replica that dies (its server, its actor or its whole node) is an engine fault like a
local server's death: requests to it fail to connect, the client reports it to the breaker,
which takes it out of rotation while the other replicas carry on, and calls the replica's
restart function here (:meth:`RayReplicas.restart_fns`). That asks the actor for its endpoint:
an actor whose server died starts a new one; a dead actor is restarted by Ray (at most
``max_restarts`` times, on any node with room; the call waits for it) and its new server's
endpoint rejoins the rotation. Requests in flight on the dead replica are re-issued on
another; nothing from a dead replica reaches a search. When Ray gives up (out of restarts or
resources), the endpoint is failed and the run goes on on the survivors.

Ray is imported only here (and by :mod:`models.ray_local`, which makes a local Ray started
here end with this process), and only when a cluster is configured (``pip install -e
'.[ray]'``). Every node needs ponder installed (the actor imports ``models``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from models.managed import restartable
from models.ray_local import start_local_ray
from models.records import ServerRecord
from models.server import ProgressFn, ServerSettings, is_healthy, start_server, terminate
from search.protocols import ConfigError, EngineFault

log = logging.getLogger(__name__)

StartFn = Callable[[ServerSettings], ServerRecord]
"""Starts one server on the actor's node and returns its record (picklable: a module-level function)."""


def vllm_start(settings: ServerSettings) -> ServerRecord:
    """A vLLM server that ends with the actor's process (a dead actor leaves no server: Ray
    SIGKILLs the server's leader or the leader sees its owner gone, and the server's guardian
    ends the rest of its process group, :mod:`models.guardian`)."""
    return start_server(settings, record=False, exit_with_parent=True)


class ReplicaActor:
    """One replica: a server on this actor's node (Ray's ``@ray.remote`` is applied by
    :func:`ray_replicas`, so this module imports without Ray)."""

    def __init__(self, settings: ServerSettings, start: StartFn) -> None:
        import ray

        self.settings, self.start = settings, start
        self.node_ip = ray.util.get_node_ip_address()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.restarts = 0
        self.record = start(settings)

    @property
    def url(self) -> str:
        return f"http://{self.node_ip}:{self.record.port}"

    def endpoint(self) -> str:
        """Where the driver sends: this node's address and the server's port."""
        return self.url

    def ensure(self) -> str:
        """The endpoint of a healthy server: a new one when the old one died."""
        if not is_healthy(self.url, timeout=5.0):
            log.warning("replica server on %s is down; starting another", self.url)
            terminate(self.record.pid, timeout=10)
            self.record = self.start(self.settings)
            self.restarts += 1
        return self.url

    def info(self) -> dict[str, Any]:
        """What tests and events read: pid, node, endpoint, server restarts."""
        return {"pid": self.record.pid, "node_id": self.node_id, "endpoint": self.url, "restarts": self.restarts,
                "model": self.record.model, "checkpoint": self.record.checkpoint}

    def stop(self) -> None:
        terminate(self.record.pid, timeout=10)


class RayReplicas:
    """The driver's view of the replica actors: endpoints and their restart functions."""

    def __init__(self, actors: list[Any], infos: list[dict[str, Any]], *, attempts: int = 5,
                 call_timeout_s: float = 300.0, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.actors = actors
        self.names = [i["endpoint"] for i in infos]
        self.model = infos[0]["model"]
        self.checkpoint = Path(infos[0]["checkpoint"]) if infos[0]["checkpoint"] not in ("", "fake") else None
        self.attempts = attempts
        self.call_timeout_s = call_timeout_s
        self.on_event = on_event
        self.poll_s = 1.0
        """Seconds a restart's wait holds :attr:`_lock` at a time (what ``close`` may wait)."""
        self.closed = False
        self._lock = threading.Lock()
        """Held by a restart around its Ray calls and by ``close`` to set :attr:`closed`: after
        ``ray.shutdown`` any Ray call would start a new local Ray (Ray's auto-init), and a
        restart in flight in its thread outlives the run (seen: a second local Ray started by
        the breaker's restart after the run ended, its agents left for a minute)."""

    def endpoints(self) -> list[str]:
        return list(self.names)

    def restart_fns(self) -> dict[str, Callable[[], Awaitable[str]]]:
        """Endpoint -> the breaker's restart function for that replica."""
        return {name: self._restart_fn(i) for i, name in enumerate(self.names)}

    def _restart_fn(self, i: int) -> Callable[[], Awaitable[str]]:
        async def restart() -> str:
            return await asyncio.to_thread(self.recover, i)

        return restart

    def recover(self, i: int) -> str:
        """Replica ``i``'s endpoint once it serves again: its actor restarts the server, or Ray
        restarts the actor (this call waits for it, up to ``call_timeout_s``: a restarting actor
        starts a new vLLM server before it answers). Raises EngineFault when Ray gives up, or
        when the replicas are closed meanwhile (no Ray call is made after that)."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        deadline = time.monotonic() + self.call_timeout_s
        died = 0
        last: Exception | None = None
        pending = None  # the ensure() call being waited for
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineFault(self.names[i], f"replica actor did not serve again in {self.call_timeout_s:g} s "
                                  f"({type(last).__name__ if last else 'no answer'})")
            try:
                with self._lock:
                    if self.closed:
                        raise EngineFault(self.names[i], "the replicas were closed while it restarted")
                    if pending is None:
                        pending = self.actors[i].ensure.remote()
                    ready, _ = ray.wait([pending], timeout=min(left, self.poll_s))
                    if not ready:
                        continue
                    pending = None
                    url = ray.get(ready[0])
            except ActorUnavailableError as e:  # restarting (its new server starting): wait for it
                last, pending = e, None
                time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
                continue
            except RayActorError as e:  # died under the call; dead for good after `attempts` of these
                last, died, pending = e, died + 1, None
                if died >= self.attempts:
                    raise EngineFault(self.names[i], f"Ray could not restart the replica's actor ({type(e).__name__}: "
                                      f"{str(e).splitlines()[0]}); raise model.cluster.max_restarts or "
                                      "free resources for it") from e
                time.sleep(min(1.0 * 2 ** (died - 1), 8.0))
                continue
            if self.on_event is not None:
                self.on_event({"event": "replica_rejoined", "endpoint": self.names[i], "url": url, "time": time.time()})
            return url

    def info(self) -> list[dict[str, Any]]:
        import ray

        return ray.get([a.info.remote() for a in self.actors], timeout=60)

    def close(self, *, ready_s: float = 5.0, stop_s: float = 30.0) -> None:
        """Stops every replica: an actor that answers within ``ready_s`` stops its server (all
        at once, up to ``stop_s``: the server's memory is free when this returns); one still
        starting a server (``ensure`` after its server died: an actor runs one call at a time,
        so any other waits behind the start-up, minutes for vLLM) or restarted by Ray is not
        waited for. Then every actor is killed; a server whose actor is killed without
        stopping it is ended by its guardian (:mod:`models.guardian`)."""
        import ray

        with self._lock:  # a restart in flight makes no Ray call after this (see _lock)
            self.closed = True
        pings = {}
        for actor in self.actors:
            with contextlib.suppress(Exception):
                pings[actor.endpoint.remote()] = actor
        answered, _ = ray.wait(list(pings), num_returns=len(pings), timeout=ready_s) if pings else ([], [])
        stops = []
        for ref in answered:
            with contextlib.suppress(Exception):
                ray.get(ref, timeout=0)  # raises for an actor that died: nothing to stop there
                stops.append(pings[ref].stop.remote())
        if stops:
            ray.wait(stops, num_returns=len(stops), timeout=stop_s)
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)


def init_ray(address: str) -> bool:
    """Connects to the cluster at ``address`` (``auto``, ``ray://HOST:PORT``, or ``local``:
    a Ray started here, which ends with this process, :mod:`models.ray_local`). Returns True
    when this call started or connected Ray (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    if address == "local":  # ours: it ends with this process (models.ray_local)
        start_local_ray(include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


@contextlib.contextmanager
def ray_replicas(cluster: Any, settings: ServerSettings, *, on_progress: ProgressFn | None = None,
                 start: StartFn = vllm_start, on_event: Callable[[dict[str, Any]], None] | None = None,
                 call_timeout_s: float | None = None) -> Iterator[RayReplicas]:
    """Starts ``cluster.replicas`` replica actors and yields them once every server answers.

    Args:
        cluster: ``ponder.config.RayClusterConfig`` (address, replicas, gpus_per_replica,
            cpus_per_replica, max_restarts).
        settings: The servers' settings (the host is set to all interfaces, the tensor
            parallel size to ``gpus_per_replica``).
        start: Starts a server in the actor (default: vLLM; tests pass a fake's).
        on_event: Receives a ``replica_rejoined`` event (endpoint, new url) each time a
            replica serves again after Ray restarted it or its server.
        call_timeout_s: How long a replica may take to (re)start (default: the settings').
    """
    try:
        import ray
    except ImportError as e:
        raise ConfigError("model.cluster", cluster.kind, "Ray is not installed: pip install -e '.[ray]'") from e
    started_ray = init_ray(cluster.address)
    settings = settings.model_copy(update={"host": "0.0.0.0", "port": None,
                                           "tensor_parallel_size": max(1, cluster.gpus_per_replica)})
    remote = ray.remote(ReplicaActor).options(
        num_cpus=cluster.cpus_per_replica, num_gpus=cluster.gpus_per_replica, max_restarts=cluster.max_restarts,
        max_task_retries=0, scheduling_strategy="SPREAD")
    actors = [remote.remote(settings, start) for _ in range(cluster.replicas)]
    replicas = None
    try:
        if on_progress is not None:
            on_progress(f"starting {cluster.replicas} replica actor(s) on the Ray cluster")
        timeout = call_timeout_s or settings.startup_timeout_s
        infos = ray.get([a.info.remote() for a in actors], timeout=timeout)
        replicas = RayReplicas(actors, infos, call_timeout_s=timeout, on_event=on_event)
        if on_progress is not None:
            on_progress("replicas ready on " + ", ".join(replicas.names))
        with restartable(replicas.restart_fns()):  # restarted by Ray where their endpoints are handed on
            yield replicas
    finally:
        if replicas is not None:
            replicas.close()
        else:
            for actor in actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)
        if started_ray:
            ray.shutdown()
