"""MC-NEST on the embedded model (spec 01): whole-answer nodes from follow-up chat turns."""

import asyncio
import json

import pytest

from ponder.config import parse_run_config
from ponder.run import run_config

pytestmark = pytest.mark.integration


def test_mc_nest_on_embedded_server(embedded_server, tmp_path):
    cfg = parse_run_config({
        "name": "it-mc-nest", "run_dir": str(tmp_path / "mc_nest"),
        "tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 1,
                  "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}},
        "search": {"algorithm": "mc_nest", "num_rollouts": 2, "answer_tokens": 48, "critique_tokens": 32},
        "budget": {"max_generated_tokens": 800},
        "model": {"endpoints": [embedded_server.endpoint], "model": embedded_server.model},
    })
    outcome = asyncio.run(run_config(cfg))
    assert len(outcome.rows) == 2
    for row in outcome.rows:
        assert row["status"] in {"correct", "incorrect", "unparseable"}, row
        usage = row["usage"]
        # self-evaluations are policy generations (in the budget) and listed as reward cost
        assert usage["reward_calls"] >= 3 and usage["reward_tokens"] > 0 and usage["calls"] > usage["reward_calls"]
        # follow-up turns extend the node's conversation token ids: the server's prefix cache hits
        assert usage["cached_prompt_tokens"] > 0
    for path in (tmp_path / "mc_nest" / "traces").glob("*.json"):
        trace = json.loads(path.read_text())
        nodes = trace["nodes"]
        assert nodes[1]["info"]["role"] == "zero_shot" and nodes[1]["prompt_ids"] == trace["root_prefix"]
        for node in nodes[1:]:
            assert node["token_ids"] and node["info"]["reward_samples"], node["id"]
            assert all(-100 <= s["score"] <= 100 for s in node["info"]["reward_samples"])
        refined = [n for n in nodes[2:] if n["info"].get("role") == "refine"]
        assert refined and all(n["info"]["critique"] for n in refined)
        assert trace["extra"]["rollouts"] >= 1 and len(trace["extra"]["selected"]) == trace["extra"]["rollouts"]
