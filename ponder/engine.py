"""Wiring: tasks + model + search config -> searched, verified, recorded problems.

The search receives a ``SearchContext`` built here. In solve mode its ``oracle`` is None and
nothing else in it refers to a gold answer; answers are verified only after the search ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from models.client import VLLMClient, VLLMPolicy, served_model
from models.embedded import embedded_checkpoint
from models.pooling_prm import PoolingPRM
from models.reward import GenerativePRM, SelfEvalReward
from models.server import ensure_server
from models.tokenizer import HFTokenizer
from ponder.config import ModelConfig, RewardConfig, RunConfig
from ponder.rundir import RunDir
from search.context import SamplingDefaults, SearchContext
from search.protocols import Problem, RewardModel, Tokenizer, Usage, Verdict
from search.scheduler import BoundedPolicy, BoundedRewardModel, solve_all
from search.trace import SearchResult
from verifiers.tasks import TaskSet, load_tasks


@dataclasses.dataclass
class Engine:
    """A live policy (and optional reward model) with its tokenizer."""

    client: VLLMClient
    tokenizer: Tokenizer
    policy: BoundedPolicy
    reward_model: RewardModel | None
    system_prompt: str | None

    def root_prefix(self, problem: Problem) -> list[int]:
        return self.tokenizer.chat_prompt(problem.question, self.system_prompt)


@contextlib.contextmanager
def model_endpoints(model: ModelConfig) -> Iterator[tuple[list[str], Path | None, str | None]]:
    """Endpoints, checkpoint and served name: configured ones, else a local server.

    With no endpoints configured, a recorded healthy server of the checkpoint is reused, or
    one is started (the embedded model by default) and stopped when the block ends.
    """
    if model.endpoints:
        yield list(model.endpoints), Path(model.checkpoint) if model.checkpoint else None, model.model
        return
    with ensure_server(model.checkpoint) as record:
        yield [record.endpoint], Path(record.checkpoint), model.model or record.model


def _reward_model(cfg: RewardConfig | None, client: VLLMClient, tokenizer: Tokenizer,
                  system_prompt: str | None = None) -> RewardModel | None:
    if cfg is None:
        return None
    prm_client = client
    if cfg.endpoints:
        prm_client = VLLMClient(cfg.endpoints, cfg.model or client.model, timeout=client.timeout)
    match cfg.kind:
        case "self_eval":
            return SelfEvalReward(client, tokenizer, system=system_prompt)
        case "generative_prm":
            return GenerativePRM(prm_client, tokenizer)
        case "pooling_prm":
            return PoolingPRM(prm_client, tokenizer)


@contextlib.asynccontextmanager
async def open_engine(model: ModelConfig, reward: RewardConfig | None = None) -> AsyncIterator[Engine]:
    """Connects to (or starts) the policy server and yields a ready :class:`Engine`."""
    with model_endpoints(model) as (endpoints, checkpoint, name):
        tokenizer = HFTokenizer(checkpoint or embedded_checkpoint())
        name = name or await served_model(endpoints[0])
        client = VLLMClient(endpoints, name, timeout=model.timeout_s, max_connections=max(64, model.max_in_flight))
        try:
            policy = BoundedPolicy(VLLMPolicy(client), model.max_in_flight)
            rm = _reward_model(reward, client, tokenizer, model.system_prompt)
            if rm is not None:
                rm = BoundedRewardModel(rm, model.max_in_flight)
            yield Engine(client, tokenizer, policy, rm, model.system_prompt)
        finally:
            await client.aclose()


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
    )


def _default_extract(text: str) -> str | None:
    from verifiers.extract import extract_answer

    return extract_answer(text)


def result_row(problem: Problem, outcome: SearchResult | BaseException, verdict: Verdict | None) -> dict[str, Any]:
    """One line of results.jsonl."""
    if isinstance(outcome, BaseException):
        return {"id": problem.id, "answer": None, "status": "error", "correct": False,
                "error": f"{type(outcome).__name__}: {outcome}", "usage": Usage().to_dict()}
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
    }


@dataclasses.dataclass
class RunOutcome:
    rows: list[dict[str, Any]]
    skipped: int
    wall_seconds: float
    peak_in_flight: int


async def run_config(cfg: RunConfig, on_row: Callable[[dict[str, Any]], None] | None = None,
                     tasks: TaskSet | None = None) -> RunOutcome:
    """Runs a whole config: resumes from ``results.jsonl``, records each problem as it ends."""
    tasks = tasks or load_tasks(cfg.tasks)
    with RunDir(cfg.resolved_run_dir) as run_dir:
        run_dir.write_config(cfg.model_dump(mode="json"))
        done = run_dir.finished()
        pending = [p for p in tasks.problems if p.id not in done]
        index = {p.id: i for i, p in enumerate(tasks.problems)}
        async with open_engine(cfg.model, cfg.reward) as engine:
            start = time.perf_counter()  # search time, after the server is up

            async def on_result(problem: Problem, outcome: SearchResult | Exception) -> None:
                verdict = None
                trace = None
                if isinstance(outcome, SearchResult):
                    # The gold is consulted only now, after the search has returned.
                    verdict = await tasks.averify(problem.id, outcome.answer or "")
                    trace = outcome.to_trace(problem).model_dump(mode="json")
                row = result_row(problem, outcome, verdict)
                run_dir.record(row, trace)
                if on_row:
                    on_row(row)

            await solve_all(
                pending,
                lambda p: make_context(cfg, engine, p, tasks, index[p.id]),
                cfg.search,
                cfg.max_concurrent_problems,
                on_result,
            )
            peak = engine.policy.peak_in_flight
            wall = time.perf_counter() - start
        rows = list(run_dir.finished().values())
    return RunOutcome(rows, len(done), wall, peak)


def summarize(rows: Sequence[dict[str, Any]], wall_seconds: float) -> dict[str, float]:
    """Accuracy and compute of a run (usage summed over problems)."""
    total = Usage()
    for r in rows:
        total.add(Usage(**r["usage"]))
    n = len(rows)
    return {
        "problems": n,
        "accuracy": sum(r["correct"] for r in rows) / n if n else 0.0,
        "errors": sum(r["status"] == "error" for r in rows),
        "prompt_tokens": total.prompt_tokens,
        "generated_tokens": total.generated_tokens,
        "cached_share": total.cached_prompt_tokens / total.prompt_tokens if total.prompt_tokens else 0.0,
        "reward_tokens": total.reward_tokens,
        "calls": total.calls,
        "wall_seconds": wall_seconds,
        "tok_per_s": total.generated_tokens / wall_seconds if wall_seconds else 0.0,
    }
