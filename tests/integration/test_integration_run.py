"""End to end on the embedded model: searches run against the real local vLLM server."""

import asyncio
import json

import pytest

from ponder.config import parse_run_config
from ponder.run import run_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("search", [
    {"algorithm": "step_beam", "beam_width": 2, "num_children": 2},
    {"algorithm": "mcts", "num_simulations": 4, "num_children": 2, "value": "prior", "num_parallel": 2},
])
def test_run_on_embedded_server(embedded_server, tmp_path, search):
    cfg = parse_run_config({
        "name": "it", "run_dir": str(tmp_path / search["algorithm"]),
        "tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 3, "seed": 1,
                  "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}},
        "search": search,
        "steps": {"max_depth": 3, "max_step_tokens": 48},
        "budget": {"max_generated_tokens": 600},
        "model": {"endpoints": [embedded_server.endpoint], "model": embedded_server.model},
    })
    outcome = asyncio.run(run_config(cfg))
    assert len(outcome.rows) == 3
    for row in outcome.rows:
        assert row["status"] in {"correct", "incorrect", "unparseable"}, row
        assert row["usage"]["generated_tokens"] > 0 and row["usage"]["calls"] >= 1
    trace = json.loads(next((tmp_path / search["algorithm"] / "traces").glob("*.json")).read_text())
    nodes = trace["nodes"]
    assert trace["schema_version"] == 1 and len(nodes) > 1
    # Children extend their parent's token ids: prompts are prefix + step ids (prefix-cache friendly).
    assert all(n["token_ids"] for n in nodes[1:])
    assert outcome.peak_in_flight >= 1
