"""Opening the engine: a model's servers (configured, reused, or started and managed), its
tokenizer, the policy and the reward model, warmed up and ready for a search.

``open_engine`` yields an :class:`Engine`; ``ponder.run`` runs a config on it, and
``ponder prove``, the RL trainer and the benchmarks open one the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from models.breaker import RestartFn
from models.client import VLLMClient, served_model
from models.embedded import embedded_checkpoint
from models.managed import ensure_server, own_restart_fns
from models.replicas import ensure_replicas
from models.policy import VLLMPolicy
from models.pooling_prm import PoolingPRM
from models.reward import GenerativePRM, SelfEvalReward
from models.records import recorded_servers
from models.server import ProgressFn, ServerSettings
from models.tokenizer import HFTokenizer
from models.warmup import warm_up
from ponder.config import ModelConfig, RewardConfig
from search.protocols import Problem, RewardModel, StepChecker, Tokenizer
from search.scheduler import BoundedPolicy, BoundedRewardModel
from verifiers.step_reward import CombinedReward, SymbolicChecker, SymbolicReward


@dataclasses.dataclass
class Engine:
    """A live policy (and optional reward model) with its tokenizer.

    ``clients`` are every HTTP client the engine opened (the policy's first); their circuit
    breakers say how long the engine was down and how often it was restarted.
    """

    client: VLLMClient
    tokenizer: Tokenizer
    policy: BoundedPolicy
    reward_model: RewardModel | None
    system_prompt: str | None
    clients: tuple[VLLMClient, ...] = ()
    step_checker: StepChecker | None = None
    """The symbolic step checker (sympy in verifier workers): the ``symbolic`` label generator's."""

    @property
    def model_name(self) -> str:
        """The served policy's name (recorded on labels)."""
        return self.client.model if self.client is not None else "unknown"

    def root_prefix(self, problem: Problem) -> list[int]:
        return self.tokenizer.chat_prompt(problem.question, self.system_prompt)

    def outage_seconds(self) -> float:
        """Seconds so far during which a model server of this engine was unavailable."""
        return sum(c.breaker.outage_seconds() for c in self.clients)

    def stats(self) -> dict[str, int]:
        """Outages and server restarts seen so far, over all clients."""
        total = {"outages": 0, "restarts": 0}
        for c in self.clients:
            for k, v in c.breaker.stats().items():
                total[k] += v
        return total


@dataclasses.dataclass(frozen=True)
class Served:
    """Where a model is served: endpoints, the checkpoint (for the tokenizer), the served
    name, and restart functions for the servers ponder manages."""

    endpoints: list[str]
    checkpoint: Path | None
    name: str | None
    restart_fns: dict[str, RestartFn]


_TOKENIZERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ponder-tokenizer")
"""Loads a command's tokenizer beside its server's start-up."""

WARM_UP_QUESTION = "What is 2 + 3?"
"""The question of the warm-up requests (with the run's system prompt, in the chat template)."""


@contextlib.contextmanager
def model_endpoints(model: ModelConfig, on_progress: ProgressFn | None = None,
                    on_event: Callable[[dict[str, Any]], None] | None = None) -> Iterator[Served]:
    """Configured endpoints (external: waited for when down, unless this process started the
    server behind one: restarted), else a local server that ponder manages (restarted when it
    dies).

    With no endpoints configured, a recorded healthy server of the checkpoint is reused (all
    of `ponder serve --replicas N`'s), or ``model.replicas`` are started (the embedded model by
    default; each on its share of the machine, ``models.replicas``) and stopped when the block
    ends; with ``model.cluster`` the replicas are Ray actors (``models.ray_replicas``).
    ``on_progress`` is told what the start-up is doing; ``on_event`` receives a Ray replica's
    ``replica_rejoined`` event (its new endpoint, after Ray restarted it).
    """
    if model.endpoints:
        yield Served(list(model.endpoints), Path(model.checkpoint) if model.checkpoint else None, model.model,
                     own_restart_fns(model.endpoints))
        return
    if model.cluster is not None:  # one replica per Ray actor (Ray imported only here)
        from models.ray_replicas import ray_replicas

        with ray_replicas(model.cluster, model.server_settings(), on_progress=on_progress,
                          on_event=on_event) as cluster:
            yield Served(cluster.endpoints(), cluster.checkpoint, model.model or cluster.model, cluster.restart_fns())
        return
    if model.replicas > 1 or len(recorded_servers()) > 1:  # this command's replicas, or `ponder serve --replicas`'
        with ensure_replicas(model.replicas, model.server_settings(), on_progress=on_progress) as servers:
            yield Served([s.endpoint for s in servers], Path(servers[0].record.checkpoint),
                         model.model or servers[0].record.model, {s.endpoint: s.restart for s in servers})
        return
    with ensure_server(model.checkpoint, model.server_settings(), on_progress=on_progress) as server:
        yield Served([server.endpoint], Path(server.record.checkpoint), model.model or server.record.model,
                     {server.endpoint: server.restart})


@contextlib.contextmanager
def reward_endpoints(reward: RewardConfig | None, on_progress: ProgressFn | None = None) -> Iterator[Served | None]:
    """Where a PRM is served apart from the policy: its endpoints (external), or a second local
    server of ``reward.checkpoint`` that ponder manages (a pooling PRM with vLLM's pooling
    runner); None when it shares the policy's."""
    if reward is None or reward.kind in ("self_eval", "symbolic") or not (reward.endpoints or reward.checkpoint):
        yield None
        return
    checkpoint = Path(reward.checkpoint) if reward.checkpoint else None
    if reward.endpoints:
        yield Served(list(reward.endpoints), checkpoint, reward.model, own_restart_fns(reward.endpoints))
        return
    runner = "pooling" if reward.kind == "pooling_prm" else "auto"
    with ensure_server(checkpoint, ServerSettings(checkpoint=checkpoint, runner=runner),
                       on_progress=on_progress) as server:
        yield Served([server.endpoint], Path(server.record.checkpoint), reward.model or server.record.model,
                     {server.endpoint: server.restart})


async def _reward_model(cfg: RewardConfig | None, served: Served | None, client: VLLMClient, tokenizer: Tokenizer,
                        system_prompt: str | None, make_client: Callable[..., VLLMClient],
                        checker: SymbolicChecker) -> RewardModel | None:
    if cfg is None:
        return None
    if cfg.kind == "symbolic":
        return SymbolicReward(checker)
    judge = await _judge(cfg, served, client, tokenizer, system_prompt, make_client)
    return judge if cfg.symbolic == "off" else CombinedReward(judge, checker, cfg.symbolic)


async def _judge(cfg: RewardConfig, served: Served | None, client: VLLMClient, tokenizer: Tokenizer,
                 system_prompt: str | None, make_client: Callable[..., VLLMClient]) -> RewardModel:
    prm_client, prm_tokenizer = client, tokenizer
    if served is not None:
        name = served.name or await served_model(served.endpoints[0])
        prm_client = make_client(served.endpoints, name, served.restart_fns)
        if served.checkpoint is not None:  # the PRM's own tokenizer and label tokens
            prm_tokenizer = HFTokenizer(served.checkpoint)
    match cfg.kind:
        case "self_eval":
            return SelfEvalReward(client, tokenizer, system=system_prompt)
        case "generative_prm":
            return GenerativePRM(prm_client, prm_tokenizer)
        case "pooling_prm":
            return PoolingPRM(prm_client, prm_tokenizer)
    raise ValueError(f"not a judge kind: {cfg.kind!r}")


@contextlib.asynccontextmanager
async def open_engine(model: ModelConfig, reward: RewardConfig | None = None,
                      on_event: Callable[[dict[str, Any]], None] | None = None,
                      on_progress: ProgressFn | None = None, warm: bool = True) -> AsyncIterator[Engine]:
    """Connects to (or starts) the policy server, and a PRM server when the reward model is
    served apart (``reward.endpoints`` or ``reward.checkpoint``), and yields a ready
    :class:`Engine`. Both get the same fault handling: a server ponder started is restarted
    when it dies, an external one is waited for.

    ``on_event`` receives the servers' outage / restart / recovered / failed events (and a Ray
    replica's ``replica_rejoined``);
    ``on_progress`` what the start-up is doing (a server's start phases, the warm-up). The
    policy's servers are warmed up (a few short requests, ``models.warmup``) before the
    engine is yielded, so a run's clock, which starts after, does not pay for cold servers;
    ``warm=False`` skips that (a benchmark that counts the server's tokens around the run).
    """
    clients: list[VLLMClient] = []

    def make_client(endpoints: list[str], name: str, restart_fns: dict[str, RestartFn]) -> VLLMClient:
        client = VLLMClient(endpoints, name, timeout=model.timeout_s, max_connections=max(64, model.max_in_flight),
                            restart_fns=restart_fns, max_restarts=model.max_restarts,
                            outage_timeout_s=model.outage_timeout_s, on_event=on_event,
                            routing=model.routing, rebind_factor=model.rebind_factor)
        clients.append(client)
        return client

    # The tokenizer (transformers: seconds of imports) loads on a thread while the server starts.
    checkpoint = Path(model.checkpoint) if model.checkpoint else None
    loading = _TOKENIZERS.submit(lambda: HFTokenizer(checkpoint or embedded_checkpoint()))
    with model_endpoints(model, on_progress, on_event) as served, \
            reward_endpoints(reward, on_progress) as reward_served:
        if not loading.done() and on_progress is not None:
            on_progress("loading the tokenizer")
        tokenizer = await asyncio.wrap_future(loading)
        name = served.name or await served_model(served.endpoints[0])
        try:
            client = make_client(served.endpoints, name, served.restart_fns)
            if warm:
                await warm_up(client, tokenizer.chat_prompt(WARM_UP_QUESTION, model.system_prompt),
                              on_progress=on_progress)
            policy = BoundedPolicy(VLLMPolicy(client, tokenizer.decode_with_offsets), model.max_in_flight,
                                   model.target_in_flight)
            checker = SymbolicChecker(reward.checker if reward is not None else None)
            rm = await _reward_model(reward, reward_served, client, tokenizer, model.system_prompt, make_client,
                                     checker)
            if rm is not None:  # a judge on the policy's server takes places in its batch: counted in its fill
                shares = reward is not None and reward.kind != "symbolic" and reward_served is None
                rm = BoundedRewardModel(rm, model.max_in_flight, occupancy=policy.occupancy if shares else None)
            yield Engine(client, tokenizer, policy, rm, model.system_prompt, tuple(clients), checker)
        finally:
            for c in clients:
                await c.aclose()
