"""Running a config: tasks + model + search config -> searched, verified, recorded problems.

The search receives a ``SearchContext`` built here. In solve mode its ``oracle`` is None and
nothing else in it refers to a gold answer; answers are verified only after the search ends.
The engine it searches with is opened by ``ponder.engine.open_engine``. A label run's
datasets are written by ``export_labelled`` (``training.export``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from models.server import ProgressFn
from ponder.config import RunConfig, parse_run_config
from ponder.engine import Engine, open_engine
from ponder.rundir import open_run
from search.context import SamplingDefaults, SearchContext
from search.labels import label_problem
from search.protocols import Problem, Usage, Verdict
from search.scheduler import solve_all
from search.trace import SearchResult
from verifiers.tasks import TaskSet, load_tasks


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
    ``warm_up_server=False`` skips the warm-up (see ``open_engine``). With ``cfg.drivers > 1``
    the problems are sharded over that many driver processes (``ponder.shards``), recorded in
    the same run directory.
    """
    tasks = tasks or load_tasks(cfg.tasks)
    if cfg.drivers > 1:  # the problems sharded over driver processes (Ray imported only there)
        from ponder.shards.supervisor import run_sharded

        return await run_sharded(cfg, tasks, on_row=on_row, on_event=on_event, on_progress=on_progress,
                                 warm_up_server=warm_up_server)
    async with open_run(cfg.resolved_run_dir, cfg.model_dump(mode="json"), on_event,
                        resolve=resolve_saved) as rec:
        done = rec.done
        pending = [p for p in tasks.problems if p.id not in done]
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
            index = {p.id: i for i, p in enumerate(tasks.problems)}
            await rec.until_stopped(search_problems(cfg, engine, tasks, pending, index, rec.record, on_row),
                                    len(tasks.problems))
            peak = engine.policy.peak_in_flight
            wall = time.perf_counter() - start
            stats = engine.stats()
        rows = list(rec.run_dir.rows().values())
    return RunOutcome(rows, len(done), wall, peak, stats)


def resolve_saved(saved: dict[str, Any]) -> dict[str, Any]:
    """A resumed run's saved config under today's schema (``rundir.config_changes``)."""
    return parse_run_config(saved).model_dump(mode="json")


RecordFn = Callable[[dict[str, Any], Callable[[], Any] | None, Callable[[], Any] | None], Awaitable[None]]
"""Records one finished problem: its result row, then builders of its trace and labels JSON
(``rundir.Recording.record``, or a sharded run's writer)."""


async def search_problems(cfg: RunConfig, engine: Engine, tasks: TaskSet, problems: Sequence[Problem],
                          index: dict[str, int], record: RecordFn,
                          on_row: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Searches ``problems`` on ``engine`` (all concurrently, ``solve_all``) and records each as
    it ends: verified (label mode: labelled first), its row, trace and labels passed to
    ``record``. ``index``: each problem's place in the whole task set (its seed)."""
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
        await record(row, trace_fn, labels_fn)
        if on_row:
            on_row(row)

    await solve_all(list(problems), make_ctx, cfg.search, cfg.max_concurrent_problems, on_result)


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


def export_labelled(cfg: RunConfig, tasks: TaskSet | None = None) -> list[Path]:
    """The datasets of a finished label run, under ``RUN_DIR/datasets``: its ``cfg.export``
    formats, prm / pairs / value once per label generator (their labels mean different things,
    ``prm_GENERATOR``), sft once (``tasks`` check solutions that carry no verifier score)."""
    from training.export import export_run

    labelled = [f for f in cfg.export if f != "sft"]
    written: list[Path] = []
    for generator in dict.fromkeys(g.generator for g in cfg.label_generators):
        if labelled:
            written += export_run(cfg.resolved_run_dir, labelled, generator=generator).values()
    if "sft" in cfg.export:
        written += export_run(cfg.resolved_run_dir, ["sft"], tasks=tasks).values()
    return written
