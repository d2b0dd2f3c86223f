"""`ponder bench prove`: prover configurations side by side on one theorem set and one engine.

At an equal tactic-generation budget per theorem (``max_calls`` requests of
``expansion_width`` tactics): 1 agent without planner; 4 agents sharing the cache; 4 agents
without sharing; 1 agent with the planner; 4 sharing agents with the planner. Each
configuration is its own resumable run dir under ``OUT/LABEL``. Planner requests are counted
apart (they are not tactic generation).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ponder.config import ModelConfig
from ponder.prove import ProveConfig, prove_all, select_theorems, summarize_prove
from search.prover.agents import BfsProverConfig
from search.prover.bfs import ProverConfig

CONFIGS: dict[str, dict[str, Any]] = {
    "1 agent": {"num_agents": 1, "share_cache": True, "planner": False},
    "4 agents shared": {"num_agents": 4, "share_cache": True, "planner": False},
    "4 agents unshared": {"num_agents": 4, "share_cache": False, "planner": False},
    "1 agent + planner": {"num_agents": 1, "share_cache": True, "planner": True},
    "4 shared + planner": {"num_agents": 4, "share_cache": True, "planner": True},
}

COLUMNS = ("config", "proved", "theorems", "tactic_calls", "generation_calls", "generated_tokens", "env_seconds",
           "generation_seconds", "wall_seconds", "cache_hits", "plan_tokens")


def bench_configs(env: str, max_calls: int, limit: int | None, out: Path, endpoint: str | None, seed: int,
                  expansion_width: int, max_expansions: int, only: list[str] | None = None) -> list[ProveConfig]:
    prover = ProverConfig(expansion_width=expansion_width, max_expansions=max_expansions, max_tactic_tokens=32)
    model = ModelConfig(endpoints=[endpoint] if endpoint else [])
    cfgs = []
    for label, fields in CONFIGS.items():
        if only and label not in only:
            continue
        search = BfsProverConfig(max_calls=max_calls, seed=seed, plan_retries=1, max_replans=1, prover=prover, **fields)
        cfgs.append(ProveConfig(name=label, env=env, limit=limit, search=search, model=model,
                                run_dir=str(out / label.replace(" ", "_").replace("+", "plus")),
                                max_concurrent_theorems=8))
    return cfgs


def _plan_tokens(run_dir: Path) -> int:
    import json

    total = 0
    for trace in (run_dir / "traces").glob("*.json"):
        plans = json.loads(trace.read_text())["extra"].get("plans", [])
        total += sum(p.get("planner_tokens", 0) for p in plans)
    return total


async def bench_prove(cfgs: list[ProveConfig], env_workers: int = 2) -> list[dict[str, Any]]:
    """Runs every config on one engine and one environment; a table row per config."""
    from ponder.engine import open_engine
    from verifiers.proof import open_env

    env = open_env(cfgs[0].resolved_env, num_workers=env_workers, tactic_timeout_s=cfgs[0].tactic_timeout_s)
    rows = []
    try:
        async with open_engine(cfgs[0].model) as engine:
            for cfg in cfgs:
                start = time.perf_counter()
                outcome = await prove_all(cfg, engine, env, select_theorems(cfg))
                totals = summarize_prove(outcome.rows, time.perf_counter() - start)
                rows.append({"config": cfg.name, **totals, "theorems": totals["problems"],
                             "generation_calls": totals["calls"], "plan_tokens": _plan_tokens(cfg.resolved_run_dir)})
    finally:
        getattr(env, "close", lambda: None)()
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)
