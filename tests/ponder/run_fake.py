"""Runs `ponder.run.run_config` against the scripted engine (a subprocess for kill tests)."""

import asyncio
import sys

from ponder import run
from ponder.config import parse_run_config
from ponder_fakes import ScriptedPolicy, fake_open_engine


def main(run_dir: str, delay: float) -> None:
    cfg = parse_run_config({
        "name": "fake", "run_dir": run_dir, "max_concurrent_problems": 2,
        "tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 12, "seed": 5},
        "search": {"algorithm": "self_consistency", "num_samples": 2},
        "steps": {"max_depth": 2},
    })
    run.open_engine = fake_open_engine(ScriptedPolicy(delay=delay))
    asyncio.run(run.run_config(cfg))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
