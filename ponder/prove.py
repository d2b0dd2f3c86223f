"""`ponder prove`: a theorem set, a proof environment, prover agents on one engine, a run dir.

Every theorem runs as its own coroutine (at most ``max_concurrent_theorems`` at once) and all
their agents' tactic requests go to the engine's one ``BoundedPolicy``. The run directory is
``ponder.rundir.RunDir``'s: config.yaml, results.jsonl (one line per finished theorem; a
re-run skips them and retries ``error`` lines), traces/NAME.json. An ``EngineFault`` stops
the run (the theorems in flight stay unfinished, a re-run resumes them), as in ``ponder run``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.config import ModelConfig
from ponder.rundir import RunDir
from search.protocols import EngineFault, Interrupted, Problem, ProofEnv
from search.prover.agents import BfsProverConfig, ProveOutcome, gather_or_cancel, meter_record, prove_theorem
from search.prover.planner import PolicyPlanner
from verifiers.proof import EnvName, open_env
from verifiers.proof.theorems import TheoremSpec, theorem_set


class ProveConfig(BaseModel):
    """A `ponder prove` run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("prove", description="Run name.")
    env: EnvName = Field("auto", description="Proof environment: coq, rewrite, or auto (Coq when installed).")
    theorems: list[str] = Field(default_factory=list, description="Theorem names to prove; empty: the whole set.")
    limit: int | None = Field(None, ge=1, description="Prove at most this many theorems of the set.")
    search: BfsProverConfig = Field(default_factory=BfsProverConfig, description="Agents, planner, budget.")
    cache: Literal["local", "ray"] = Field("local", description="Proof cache: in-process, or a Ray actor.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Policy server (default: the embedded model).")
    env_workers: int = Field(2, ge=1, le=64, description="Proof-assistant worker processes.")
    tactic_timeout_s: float = Field(5.0, gt=0, description="Per-tactic limit in seconds.")
    max_concurrent_theorems: int = Field(4, ge=1, description="Theorems searched at once.")
    run_dir: str | None = Field(None, description="Run directory; default runs/NAME.")

    @property
    def resolved_env(self) -> str:
        from verifiers.proof.coq import coq_available

        return ("coq" if coq_available() is None else "rewrite") if self.env == "auto" else self.env

    @property
    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")


def select_theorems(cfg: ProveConfig) -> list[TheoremSpec]:
    specs = list(theorem_set(cfg.resolved_env))
    if cfg.theorems:
        known = {s.name: s for s in specs}
        missing = [n for n in cfg.theorems if n not in known]
        if missing:
            raise ValueError(f"invalid theorems={missing!r}: not in the {cfg.resolved_env} set")
        specs = [known[n] for n in cfg.theorems]
    return specs[: cfg.limit] if cfg.limit else specs


def result_row(spec: TheoremSpec, outcome: ProveOutcome | BaseException) -> dict[str, Any]:
    if isinstance(outcome, BaseException):
        return {"id": spec.name, "status": "error", "correct": False, "error": f"{type(outcome).__name__}: {outcome}",
                "grade": spec.grade, "usage": {"generated_tokens": 0, "calls": 0}}
    m = meter_record(outcome.meter)
    return {"id": spec.name, "status": "proved" if outcome.proved else "unproved", "correct": outcome.proved,
            "proof": outcome.proof, "validation": outcome.check, "grade": spec.grade,
            "usage": {"generated_tokens": m["generated_tokens"], "calls": m["calls"], "prompt_tokens": m["prompt_tokens"]},
            "tactic_calls": m["tactic_calls"], "env_seconds": m["env_seconds"],
            "generation_seconds": m["generation_seconds"], "cache_hits": outcome.cache_hits,
            "attempts": len(outcome.attempts), "replans": outcome.entry.replans,
            "wall_seconds": round(outcome.wall_seconds, 3)}


def _cache_factory(cfg: ProveConfig, env: ProofEnv, env_name: str) -> Callable | None:
    if cfg.cache == "local":
        return None
    from functools import partial

    from ponder.ray_cache import RayProofCache

    return lambda: RayProofCache(partial(open_env, env_name, num_workers=1, tactic_timeout_s=cfg.tactic_timeout_s))


async def prove_all(cfg: ProveConfig, engine: Any, env: ProofEnv, specs: list[TheoremSpec],
                    on_row: Callable[[dict[str, Any]], None] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Proves every unfinished theorem of ``specs`` into the run dir; returns (rows, skipped)."""
    env_name = cfg.resolved_env
    with RunDir(cfg.resolved_run_dir) as rundir:
        rundir.write_config({**cfg.model_dump(mode="json"), "env": env_name})
        done = rundir.finished()
        todo = [s for s in specs if s.name not in done]
        gate = asyncio.Semaphore(cfg.max_concurrent_theorems)
        factory = _cache_factory(cfg, env, env_name)
        seed = cfg.search.seed

        async def one(index: int, spec: TheoremSpec) -> None:
            async with gate:
                search = cfg.search if seed is None else cfg.search.model_copy(update={"seed": seed + 1000 * index})
                planner = PolicyPlanner(engine.policy, engine.tokenizer, env_name) if search.planner else None
                try:
                    outcome: ProveOutcome | Exception = await prove_theorem(
                        spec.theorem(), env, engine.policy, engine.tokenizer, search, cache_factory=factory,
                        planner=planner)
                except (EngineFault, Interrupted, asyncio.CancelledError):
                    raise
                except Exception as err:  # noqa: BLE001 - a crashed search is an error row, retried on resume
                    outcome = err
                row = result_row(spec, outcome)
                trace = None
                if isinstance(outcome, ProveOutcome):
                    if planner is not None:
                        outcome.plans.insert(0, {"planner_texts": planner.texts, "planner_calls": planner.calls,
                                                 "planner_tokens": planner.generated_tokens})
                    result = outcome.to_result()
                    trace = result.to_trace(Problem(spec.name, spec.statement)).model_dump(mode="json")
                rundir.record(row, trace)
                if on_row is not None:
                    on_row(row)

        await gather_or_cancel([one(i, s) for i, s in enumerate(specs) if s.name not in done])
        rows = rundir.rows()
    return [rows[s.name] for s in specs if s.name in rows], len(specs) - len(todo)


@dataclasses.dataclass
class ProveRun:
    rows: list[dict[str, Any]]
    skipped: int
    wall_seconds: float
    env: str


async def run_prove(cfg: ProveConfig, on_row: Callable[[dict[str, Any]], None] | None = None) -> ProveRun:
    """Opens the engine and the environment, proves the selected theorems, closes both."""
    from ponder.engine import open_engine

    specs = select_theorems(cfg)
    start = time.perf_counter()
    env = open_env(cfg.resolved_env, num_workers=cfg.env_workers, tactic_timeout_s=cfg.tactic_timeout_s)
    try:
        async with open_engine(cfg.model) as engine:
            rows, skipped = await prove_all(cfg, engine, env, specs, on_row)
    finally:
        getattr(env, "close", lambda: None)()
    return ProveRun(rows, skipped, time.perf_counter() - start, cfg.resolved_env)


def summarize_prove(rows: list[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    """Totals of a prove run (the bench table's columns)."""
    ok = [r for r in rows if r.get("status") != "error"]
    return {"theorems": len(rows), "proved": sum(bool(r["correct"]) for r in rows),
            "errors": len(rows) - len(ok),
            "tactic_calls": sum(r.get("tactic_calls", 0) for r in ok),
            "generation_calls": sum(r["usage"]["calls"] for r in ok),
            "generated_tokens": sum(r["usage"]["generated_tokens"] for r in ok),
            "env_seconds": round(sum(r.get("env_seconds", 0.0) for r in ok), 2),
            "generation_seconds": round(sum(r.get("generation_seconds", 0.0) for r in ok), 2),
            "cache_hits": sum(r.get("cache_hits", 0) for r in ok),
            "wall_seconds": round(wall_seconds, 2)}


def execute_prove(console: Any, *, env: str, agents: int, planner: bool, share: bool, max_calls: int,
                  limit: int | None, theorems: list[str], cache: str, endpoint: str | None, run_dir: str | None,
                  seed: int | None) -> int:
    """`ponder prove`: builds the config from the options, runs, prints rows and totals; the exit code."""
    import pydantic

    from ponder.interrupts import EXIT_CODES, stop_on_signals
    from search.protocols import PonderError

    try:
        search = BfsProverConfig(num_agents=agents, planner=planner, share_cache=share, max_calls=max_calls, seed=seed)
        cfg = ProveConfig(env=env, search=search, limit=limit, theorems=theorems, cache=cache,
                          model=ModelConfig(endpoints=[endpoint] if endpoint else []),
                          run_dir=run_dir or f"runs/prove-{env}")
        select_theorems(cfg)
    except (pydantic.ValidationError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        return 2
    console.print(f"prove: env={cfg.resolved_env}, {agents} agents, planner={planner}, share={share}, "
                  f"{max_calls} calls/theorem -> {cfg.resolved_run_dir}")

    def on_row(row: dict[str, Any]) -> None:
        mark = "[green]✓[/]" if row["correct"] else ("[red]![/]" if row["status"] == "error" else "[red]✗[/]")
        proof = " ".join(f"{t}." for t in row.get("proof") or [])
        console.print(f"{mark} {row['id']} (grade {row['grade']}): {row['status']} calls={row['usage']['calls']} "
                      f"tactics={row.get('tactic_calls', 0)} {proof}")

    async def go() -> ProveRun:
        async with stop_on_signals():
            return await run_prove(cfg, on_row)

    try:
        run = asyncio.run(go())
    except Interrupted as err:
        console.print(f"[bold yellow]stopped:[/] {err}")
        return EXIT_CODES.get(err.signal_name, 130)
    except PonderError as err:
        console.print(f"[bold red]error:[/] {err}; re-run the same command to resume")
        return 3 if isinstance(err, EngineFault) else 2
    if run.skipped:
        console.print(f"resumed: {run.skipped} theorems were already done")
    totals = summarize_prove(run.rows, run.wall_seconds)
    console.print(" ".join(f"{k}={v}" for k, v in totals.items()))
    console.print(f"results: {cfg.resolved_run_dir / 'results.jsonl'}   traces: {cfg.resolved_run_dir / 'traces'}")
    return 1 if totals["errors"] else 0
