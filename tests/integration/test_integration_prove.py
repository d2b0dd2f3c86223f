"""`ponder prove` end to end on the embedded model: real tactics from the real server, checked
by the real environment (Coq when installed, else the equational one). Tiny budget."""

import asyncio
import json

import pytest

from ponder.config import ModelConfig
from ponder.prove import ProveConfig, run_prove
from search.prover.agents import BfsProverConfig
from search.prover.bfs import ProverConfig

pytestmark = pytest.mark.integration


def test_prove_on_embedded_server(embedded_server, tmp_path):
    search = BfsProverConfig(num_agents=2, max_calls=3, seed=0, prover=ProverConfig(expansion_width=2, max_expansions=2))
    cfg = ProveConfig(env="auto", limit=2, search=search, run_dir=str(tmp_path / "prove"),
                      model=ModelConfig(endpoints=[embedded_server.endpoint], model=embedded_server.model))
    run = asyncio.run(run_prove(cfg))
    assert len(run.rows) == 2
    for row in run.rows:
        assert row["status"] in {"proved", "unproved"}, row
        assert 1 <= row["usage"]["calls"] <= 3 and row["usage"]["generated_tokens"] > 0
        assert row["tactic_calls"] >= 1  # the model's tactics reached the environment
    trace = json.loads(next((tmp_path / "prove" / "traces").glob("*.json")).read_text())
    assert trace["algorithm"] == "bfs_prover" and len(trace["nodes"]) > 2
    assert all(n["token_ids"] for n in trace["nodes"][1:] if n["depth"] > 1)
