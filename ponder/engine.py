"""Wiring: tasks + model + search config -> searched, verified, recorded problems.

The search receives a ``SearchContext`` built here. In solve mode its ``oracle`` is None and
nothing else in it refers to a gold answer; answers are verified only after the search ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
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
from ponder.config import ModelConfig, RewardConfig, RunConfig, parse_run_config
from ponder.rundir import open_run
from search.context import SamplingDefaults, SearchContext
from search.labels import label_problem
from search.protocols import (
    Problem,
    RewardModel,
    StepChecker,
    Tokenizer,
    Usage,
    Verdict,
)
from search.scheduler import BoundedPolicy, BoundedRewardModel, solve_all
from search.trace import SearchResult
from verifiers.step_reward import CombinedReward, SymbolicChecker, SymbolicReward
from verifiers.tasks import TaskSet, load_tasks


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
def model_endpoints(model: ModelConfig, on_progress: ProgressFn | None = None) -> Iterator[Served]:
    """Configured endpoints (external: waited for when down, unless this process started the
    server behind one: restarted), else a local server that ponder manages (restarted when it
    dies).

    With no endpoints configured, a recorded healthy server of the checkpoint is reused (all
    of `ponder serve --replicas N`'s), or ``model.replicas`` are started (the embedded model by
    default; each on its share of the machine, ``models.replicas``) and stopped when the block
    ends; with ``model.cluster`` the replicas are Ray actors (``models.ray_replicas``).
    ``on_progress`` is told what the start-up is doing.
    """
    if model.endpoints:
        yield Served(list(model.endpoints), Path(model.checkpoint) if model.checkpoint else None, model.model,
                     own_restart_fns(model.endpoints))
        return
    if model.cluster is not None:  # one replica per Ray actor (Ray imported only here)
        from models.ray_replicas import ray_replicas

        with ray_replicas(model.cluster, model.server_settings(), on_progress=on_progress) as cluster:
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

    ``on_event`` receives the servers' outage / restart / recovered / failed events;
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
    with model_endpoints(model, on_progress) as served, reward_endpoints(reward, on_progress) as reward_served:
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
            if rm is not None:
                rm = BoundedRewardModel(rm, model.max_in_flight)
            yield Engine(client, tokenizer, policy, rm, model.system_prompt, tuple(clients), checker)
        finally:
            for c in clients:
                await c.aclose()


def make_context(cfg: RunConfig, engine: Engine, problem: Problem, tasks: TaskSet | None, index: int) -> SearchContext:
    """The search's whole world for one problem. ``oracle`` is set in label mode only."""
    oracle = tasks.oracle(problem.id) if (cfg.mode == "label" and tasks is not None) else None
    extract: Callable[[str], str | None] = tasks.verifier.extract if tasks is not None else _default_extract
    return SearchContext(
        policy=engine.policy,
        root_prefix=engine.root_prefix(problem),
        problem=problem,
        steps=cfg.steps,
        extract_fn=extract,
        reward_model=engine.reward_model,
        oracle=oracle,
        budget=cfg.budget,
        sampling=SamplingDefaults(temperature=cfg.temperature, seed=None if cfg.seed is None else cfg.seed + index),
        pause_clock=engine.outage_seconds,
        chat=engine.tokenizer if hasattr(engine.tokenizer, "chat_follow_up") else None,
    )


def _default_extract(text: str) -> str | None:
    from verifiers.extract import extract_answer

    return extract_answer(text)


def result_row(problem: Problem, outcome: SearchResult | BaseException, verdict: Verdict | None,
               engine_events: dict[str, int] | None = None) -> dict[str, Any]:
    """One line of results.jsonl. ``engine_events``: outages and restarts during its search."""
    events = engine_events or {"outages": 0, "restarts": 0}
    if isinstance(outcome, BaseException):
        return {"id": problem.id, "answer": None, "status": "error", "correct": False,
                "error": f"{type(outcome).__name__}: {outcome}", "usage": Usage().to_dict(), **events}
    return {
        "id": problem.id,
        "answer": outcome.answer,
        "status": verdict.status.value if verdict else "unchecked",
        "correct": bool(verdict and verdict.correct),
        "algorithm": outcome.algorithm,
        "num_nodes": len(outcome.tree),
        "usage": outcome.usage.to_dict(),
        "bookkeeping_seconds": outcome.extra.get("bookkeeping_seconds", 0.0),
        "budget_exhausted": bool(outcome.extra.get("budget_exhausted", False)),
        "paused_seconds": round(float(outcome.extra.get("paused_seconds", 0.0)), 3),
        **events,
    }


@dataclasses.dataclass
class RunOutcome:
    """What ``run_config`` did: the run directory's rows (latest per problem, errored ones
    included), how many were already done, and this invocation's wall time and engine events."""

    rows: list[dict[str, Any]]
    skipped: int
    wall_seconds: float
    peak_in_flight: int
    engine_stats: dict[str, int] = dataclasses.field(default_factory=dict)


async def run_config(cfg: RunConfig, on_row: Callable[[dict[str, Any]], None] | None = None,
                     tasks: TaskSet | None = None,
                     on_event: Callable[[dict[str, Any]], None] | None = None,
                     on_progress: ProgressFn | None = None, warm_up_server: bool = True) -> RunOutcome:
    """Runs a whole config: resumes from ``results.jsonl``, records each problem as it ends.

    A problem is recorded only when its search really ended (an ``error`` row, from a bug
    in a search, is retried by the next run). Server outages are recovered by the engine and
    logged to ``events.jsonl``; when recovery fails the run stops with ``EngineFault`` and the
    problems in progress stay unfinished. SIGINT / SIGTERM stop it with ``Interrupted``.
    ``on_progress`` is told what happens before the search starts (server start, warm-up);
    ``warm_up_server=False`` skips the warm-up (see ``open_engine``).
    """
    tasks = tasks or load_tasks(cfg.tasks)
    async with open_run(cfg.resolved_run_dir, cfg.model_dump(mode="json"), on_event,
                        resolve=lambda saved: parse_run_config(saved).model_dump(mode="json")) as rec:
        done = rec.done
        pending = [p for p in tasks.problems if p.id not in done]
        index = {p.id: i for i, p in enumerate(tasks.problems)}
        # The verifier's worker processes start (imports: seconds of CPU) while the server
        # does, not during the search, where they would take the server's cores.
        warm = asyncio.ensure_future(asyncio.to_thread(tasks.warm)) if pending else None
        async with open_engine(cfg.model, cfg.reward, on_event=rec.event, on_progress=on_progress,
                               warm=warm_up_server) as engine:
            rec.stats_fn = engine.stats
            if warm is not None:
                if on_progress is not None and not warm.done():
                    on_progress("waiting for the answer checker's worker processes to start")
                await warm
            if on_progress is not None:
                on_progress(f"searching {len(pending)} problems")
            start = time.perf_counter()  # search time, after the server is up and warm
            seen_at_start: dict[str, dict[str, int]] = {}

            contexts: dict[str, SearchContext] = {}

            def make_ctx(p: Problem) -> SearchContext:
                seen_at_start[p.id] = engine.stats()
                contexts[p.id] = make_context(cfg, engine, p, tasks, index[p.id])
                return contexts[p.id]

            async def on_result(problem: Problem, outcome: SearchResult | Exception) -> None:
                verdict = None
                ctx = contexts.pop(problem.id, None)
                labelled = None
                if isinstance(outcome, SearchResult):
                    if cfg.mode == "label" and ctx is not None:  # rollouts: an EngineFault stops the run
                        labelled = await label_problem(ctx, cfg.label_generators, model=engine.model_name,
                                                       checker=engine.step_checker)
                    # The gold is consulted only now, after the search has returned.
                    verdict = await tasks.averify(problem.id, outcome.answer or "")
                before = seen_at_start.pop(problem.id, {})
                during = {k: v - before.get(k, 0) for k, v in engine.stats().items()}
                row = result_row(problem, outcome, verdict, during)
                if labelled is not None:
                    row.update(labels=len(labelled.labels), label_usage=labelled.rollout_usage.to_dict(),
                               label_stats=labelled.stats)
                trace_fn = (lambda: outcome.to_trace(problem).model_dump(mode="json")) \
                    if isinstance(outcome, SearchResult) else None
                labels_fn = None if labelled is None else (
                    lambda: [x.model_dump(mode="json") for x in labelled.labels])
                await rec.record(row, trace_fn, labels_fn)
                if on_row:
                    on_row(row)

            await rec.until_stopped(
                solve_all(pending, make_ctx, cfg.search, cfg.max_concurrent_problems, on_result), len(tasks.problems))
            peak = engine.policy.peak_in_flight
            wall = time.perf_counter() - start
            stats = engine.stats()
        rows = list(rec.run_dir.rows().values())
    return RunOutcome(rows, len(done), wall, peak, stats)


def summarize(rows: Sequence[dict[str, Any]], wall_seconds: float,
              engine_stats: dict[str, int] | None = None) -> dict[str, float]:
    """Accuracy over the problems that finished (errored ones counted beside it) and compute
    (usage summed over problems); with ``engine_stats``, the outages and restarts seen.

    Token counts, calls and ``tok_per_s`` cover every policy generation of the run. In label
    runs that is the search and the label rollouts together, each also shown apart
    (``search_tokens`` / ``search_calls``, ``label_rollout_tokens`` / ``label_rollout_calls``),
    with the labels written."""
    searching = Usage()
    labelling = Usage()
    for r in rows:
        searching.add(Usage(**r["usage"]))
        labelling.add(Usage(**r.get("label_usage", {})))
    total = Usage()
    total.add(searching)
    total.add(labelling)
    finished = [r for r in rows if r["status"] != "error"]
    out: dict[str, float] = {
        "problems": len(finished),
        "accuracy": sum(r["correct"] for r in finished) / len(finished) if finished else 0.0,
        "errors": len(rows) - len(finished),
    }
    if engine_stats is not None:
        out.update({"server_outages": engine_stats.get("outages", 0),
                    "server_restarts": engine_stats.get("restarts", 0)})
    if any("labels" in r for r in rows):
        out.update({"labels": sum(r.get("labels", 0) for r in rows),
                    "search_tokens": searching.generated_tokens, "search_calls": searching.calls,
                    "label_rollout_tokens": labelling.generated_tokens, "label_rollout_calls": labelling.calls})
    return {
        **out,
        "prompt_tokens": total.prompt_tokens,
        "generated_tokens": total.generated_tokens,
        "cached_share": total.cached_prompt_tokens / total.prompt_tokens if total.prompt_tokens else 0.0,
        "reward_tokens": total.reward_tokens,
        "calls": total.calls,
        "wall_seconds": wall_seconds,
        "tok_per_s": total.generated_tokens / wall_seconds if wall_seconds else 0.0,
    }
