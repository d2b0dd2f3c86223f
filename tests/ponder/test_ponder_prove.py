"""`ponder prove` wiring on the always-available environment with a scripted tactic policy:
results and traces in a resumable run dir, engine faults stop the run, SFT / pair export
(spec 04 §6-§7)."""

from __future__ import annotations

import json
import re
import types
from collections.abc import Sequence

import pytest

from ponder.prove import ProveConfig, prove_all, select_theorems, summarize_prove
from search.protocols import EngineFault, Generation, Sampling, StepProposal, Usage
from search.prover.agents import BfsProverConfig
from search.prover.bfs import ProverConfig
from verifiers.proof.rewrite import RewriteEnv
from verifiers.proof.theorems import REWRITE


class Tok:
    eos_token_id = None

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def chat_prompt(self, user: str, system: str | None = None) -> list[int]:
        return self.encode(user)


class ReferencePolicy:
    """Proposes the tactics of the theorem's reference proof (found by its statement)."""

    def __init__(self, gone_after: int | None = None) -> None:
        self.by_statement = {s.statement: s.proof for s in REWRITE}
        self.calls, self.gone_after = 0, gone_after

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        self.calls += 1
        if self.gone_after is not None and self.calls > self.gone_after:
            raise EngineFault("fake", "server gone")
        statement = re.search(r"Theorem: (.*)\n", Tok().decode(prefix)).group(1)
        tactics = list(dict.fromkeys(self.by_statement[statement]))[: sampling.n]
        props = tuple(StepProposal(t + ".", tuple(range(len(t))), (-0.1,) * len(t), "stop") for t in tactics)
        return Generation(props, Usage(calls=1))


@pytest.fixture(scope="module")
def env():
    e = RewriteEnv()
    yield e
    e.close()


def _cfg(tmp_path, **kw):
    search = BfsProverConfig(num_agents=2, max_calls=8, prover=ProverConfig(expansion_width=4, max_expansions=4))
    return ProveConfig(env="rewrite", theorems=["rw_refl", "rw_expand_sq", "rw_sym_expand"], search=search,
                       run_dir=str(tmp_path / "run"), **kw)


async def test_prove_run_dir_resume_and_export(tmp_path, env):
    cfg = _cfg(tmp_path)
    engine = types.SimpleNamespace(policy=ReferencePolicy(), tokenizer=Tok())
    rows, skipped = await prove_all(cfg, engine, env, select_theorems(cfg))
    assert skipped == 0 and [r["status"] for r in rows] == ["proved"] * 3
    assert rows[1]["proof"] == ["ring_nf", "reflexivity"] and rows[1]["tactic_calls"] >= 2
    trace = json.loads((tmp_path / "run" / "traces" / "rw_expand_sq.json").read_text())
    assert trace["algorithm"] == "bfs_prover" and trace["extra"]["validation"].startswith("all goals closed")
    assert trace["extra"]["cache"]["proofs"][0]["steps"][0]["tactic"] == "ring_nf"
    totals = summarize_prove(rows, 1.0)
    assert totals["proved"] == 3 and totals["generation_calls"] == sum(r["usage"]["calls"] for r in rows)
    again = types.SimpleNamespace(policy=ReferencePolicy(gone_after=0), tokenizer=Tok())
    rows2, skipped2 = await prove_all(cfg, again, env, select_theorems(cfg))
    assert skipped2 == 3 and rows2 == rows

    from training.export import export_run
    from datasets import load_from_disk

    paths = export_run(tmp_path / "run", ["sft", "pairs"])
    sft = load_from_disk(str(paths["sft"]))
    assert {"prompt", "completion", "problem_id"} <= set(sft.column_names) and len(sft) >= 5
    assert "ring_nf" in sft["completion"]
    pairs = load_from_disk(str(paths["pairs"]))
    assert len(pairs) >= 1 and all(c != r for c, r in zip(pairs["chosen"], pairs["rejected"]))


async def test_engine_fault_stops_the_run_and_a_rerun_resumes(tmp_path, env):
    cfg = _cfg(tmp_path, max_concurrent_theorems=1)
    broken = types.SimpleNamespace(policy=ReferencePolicy(gone_after=1), tokenizer=Tok())
    with pytest.raises(EngineFault):
        await prove_all(cfg, broken, env, select_theorems(cfg))
    results = tmp_path / "run" / "results.jsonl"
    done = results.read_text().splitlines() if results.exists() else []
    assert len(done) <= 1  # the theorem in flight when the engine went is not recorded
    rows, skipped = await prove_all(cfg, types.SimpleNamespace(policy=ReferencePolicy(), tokenizer=Tok()), env,
                                    select_theorems(cfg))
    assert skipped == len(done) and all(r["correct"] for r in rows) and len(rows) == 3


def test_bad_theorem_name_is_named(tmp_path):
    with pytest.raises(ValueError, match="theorems=.*nope"):
        select_theorems(ProveConfig(env="rewrite", theorems=["nope"]))


def test_bench_configs_share_one_budget(tmp_path):
    from benchmarks.prove import CONFIGS, bench_configs, format_table

    cfgs = bench_configs("rewrite", 4, 2, tmp_path, None, 0, 4, 4)
    assert [c.name for c in cfgs] == list(CONFIGS)
    assert {c.search.max_calls for c in cfgs} == {4} and {c.search.prover.expansion_width for c in cfgs} == {4}
    assert [(c.search.num_agents, c.search.share_cache, c.search.planner) for c in cfgs] == [
        (1, True, False), (4, True, False), (4, False, False), (1, True, True), (4, True, True)]
    assert len({c.resolved_run_dir for c in cfgs}) == 5
    table = format_table([{"config": "1 agent", "proved": 1}])
    assert table.splitlines()[2].startswith("| 1 agent | 1 |")
