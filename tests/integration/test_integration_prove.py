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


def test_prove_a_coq_file_on_embedded_server(embedded_server, tmp_path):
    # issue 24 §4: a user's file, proved by the real model's tactics in the file's context;
    # proved.v (when anything was proved) compiles as it is.
    import shutil
    import subprocess

    from ponder.prove import load_prove_config
    from verifiers.proof.coq import coq_available

    if coq_available() is not None:
        pytest.skip(f"Coq tests skipped: {coq_available()}")
    shutil.copy("configs/prove/lemmas.v", tmp_path / "lemmas.v")
    cfg = load_prove_config(tmp_path / "lemmas.v", {"run_dir": str(tmp_path / "run"), "max_calls": 4,
                                                    "endpoint": embedded_server.endpoint})
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"model": embedded_server.model})})
    run = asyncio.run(run_prove(cfg))
    assert [r["id"] for r in run.rows] == ["double_zero", "double_two", "double_add_zero"]
    assert all(r["status"] in {"proved", "unproved"} and r["usage"]["wall_seconds"] > 0 for r in run.rows), run.rows
    assert all(1 <= r["usage"]["calls"] <= 4 and r["tactic_calls"] >= 1 for r in run.rows)
    if run.proved_file is not None:
        done = subprocess.run(["coqc", "-q", run.proved_file.name], cwd=run.proved_file.parent, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "lemmas.v").read_text() == open("configs/prove/lemmas.v").read()
