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
from search.protocols import EngineFault, Generation, PonderError, Sampling, StepProposal, Usage
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
    out = await prove_all(cfg, engine, env, select_theorems(cfg))
    rows, skipped = out.rows, out.skipped
    assert skipped == 0 and [r["status"] for r in rows] == ["proved"] * 3
    assert rows[1]["proof"] == ["ring_nf", "reflexivity"] and rows[1]["tactic_calls"] >= 2
    trace = json.loads((tmp_path / "run" / "traces" / "rw_expand_sq.json").read_text())
    assert trace["algorithm"] == "bfs_prover" and trace["extra"]["validation"].startswith("all goals closed")
    assert trace["extra"]["cache"]["proofs"][0]["steps"][0]["tactic"] == "ring_nf"
    totals = summarize_prove(rows, 1.0)
    assert totals["proved"] == 3 and totals["calls"] == sum(r["usage"]["calls"] for r in rows)
    again = types.SimpleNamespace(policy=ReferencePolicy(gone_after=0), tokenizer=Tok())
    out2 = await prove_all(cfg, again, env, select_theorems(cfg))
    assert out2.skipped == 3 and out2.rows == rows

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
    out = await prove_all(cfg, types.SimpleNamespace(policy=ReferencePolicy(), tokenizer=Tok()), env,
                          select_theorems(cfg))
    assert out.skipped == len(done) and all(r["correct"] for r in out.rows) and len(out.rows) == 3


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


# ---- the run pipeline: `ponder run`'s run dir, rows, summary, resume, lock, exit codes ----

class CrashOn(ReferencePolicy):
    """The reference policy, except that requests for ``statement`` crash (a search bug, not the engine)."""

    def __init__(self, statement: str) -> None:
        super().__init__()
        self.statement = statement

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        if f"Theorem: {self.statement}\n" in Tok().decode(prefix):
            raise RuntimeError("scripted crash")
        return await super().propose(prefix, sampling)


async def test_rows_and_summary_are_run_rows_with_the_provers_fields(tmp_path, env):
    from ponder.run import result_row, summarize

    cfg = _cfg(tmp_path)
    out = await prove_all(cfg, types.SimpleNamespace(policy=ReferencePolicy(), tokenizer=Tok()), env,
                          select_theorems(cfg))
    run_keys = set(result_row(types.SimpleNamespace(id="x"), RuntimeError(), None)) - {"error"}
    for row in out.rows:
        assert run_keys <= set(row) and row["algorithm"] == "bfs_prover"
        assert row["usage"]["wall_seconds"] > 0 and row["usage"]["calls"] >= 1  # issue 24: wall in usage
        assert row["answer"] == "\n".join(row["proof"]) and row["statement"]
        assert {"tactic_calls", "env_seconds", "generation_seconds", "cache_hits", "validation"} <= set(row)
        assert row["budget_exhausted"] is (row["usage"]["calls"] >= 8)  # the theorem's max_calls
    totals = summarize_prove(out.rows, 2.0)
    assert {k: totals[k] for k in summarize(out.rows, 2.0)} == summarize(out.rows, 2.0)
    assert totals["accuracy"] == 1.0 and totals["problems"] == 3 and totals["proved"] == 3
    assert totals["tactic_calls"] == sum(r["tactic_calls"] for r in out.rows) > 0
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "env: rewrite" in config and "rw_expand_sq" in config


async def test_a_crashed_theorem_is_an_error_row_retried_on_resume(tmp_path, env):
    cfg = _cfg(tmp_path)
    sq = next(s for s in REWRITE if s.name == "rw_expand_sq")
    out = await prove_all(cfg, types.SimpleNamespace(policy=CrashOn(sq.statement), tokenizer=Tok()), env,
                          select_theorems(cfg))
    by_id = {r["id"]: r for r in out.rows}
    assert by_id["rw_expand_sq"]["status"] == "error" and "scripted crash" in by_id["rw_expand_sq"]["error"]
    assert summarize_prove(out.rows, 1.0)["errors"] == 1
    policy = ReferencePolicy()
    again = await prove_all(cfg, types.SimpleNamespace(policy=policy, tokenizer=Tok()), env, select_theorems(cfg))
    assert again.skipped == 2 and {r["id"]: r["status"] for r in again.rows}["rw_expand_sq"] == "proved"
    lines = (tmp_path / "run" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4  # the error line stays; the later line is the one that counts


async def test_a_locked_run_dir_and_a_changed_config_are_refused(tmp_path, env):
    from ponder.rundir import RunDir, RunDirError

    cfg = _cfg(tmp_path)
    engine = types.SimpleNamespace(policy=ReferencePolicy(), tokenizer=Tok())
    with RunDir(cfg.resolved_run_dir), pytest.raises(RunDirError, match="in use"):
        await prove_all(cfg, engine, env, select_theorems(cfg))
    await prove_all(cfg, engine, env, select_theorems(cfg))
    other = cfg.model_copy(update={"search": cfg.search.model_copy(update={"max_calls": 9})})
    with pytest.raises(RunDirError, match="search.max_calls"):
        await prove_all(other, engine, env, select_theorems(other))


async def test_an_engine_fault_logs_a_stopped_event(tmp_path, env):
    cfg = _cfg(tmp_path, max_concurrent_theorems=1)
    with pytest.raises(EngineFault):
        await prove_all(cfg, types.SimpleNamespace(policy=ReferencePolicy(gone_after=1), tokenizer=Tok()), env,
                        select_theorems(cfg))
    events = [json.loads(x) for x in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "stopped" and "server gone" in events[-1]["cause"]
    assert events[-1]["unfinished"] >= 2


def test_yaml_config_with_options_overriding(tmp_path):
    from ponder.prove import load_prove_config

    path = tmp_path / "prove.yaml"
    path.write_text("name: mine\nenv: rewrite\ntheorems: [rw_refl]\nsearch:\n  num_agents: 3\n  max_calls: 5\n"
                    "  prover: {expansion_width: 2}\n")
    cfg = load_prove_config(path)
    assert (cfg.search.num_agents, cfg.search.max_calls, cfg.search.prover.expansion_width) == (3, 5, 2)
    assert str(cfg.resolved_run_dir) == "runs/mine"
    cfg = load_prove_config(path, {"agents": 2, "max_calls": None, "theorems": ["rw_expand_sq"], "run_dir": "x",
                                   "endpoint": "http://h:1", "planner": False})
    assert (cfg.search.num_agents, cfg.search.max_calls, cfg.search.prover.expansion_width) == (2, 5, 2)
    assert cfg.theorems == ["rw_expand_sq"] and str(cfg.resolved_run_dir) == "x"
    assert cfg.model.endpoints == ["http://h:1"]
    with pytest.raises(PonderError, match="search.num_agents"):
        load_prove_config(path, {"agents": 0})
    with pytest.raises(PonderError, match="theorems=.*nope"):
        load_prove_config(path, {"theorems": ["nope"]})


def test_the_optionless_form_keeps_its_defaults():
    from ponder.prove import load_prove_config

    cfg = load_prove_config(None, {"env": "rewrite"})
    assert (cfg.search.max_calls, cfg.search.seed, cfg.search.num_agents) == (16, 0, 1)
    assert str(cfg.resolved_run_dir) == "runs/prove-rewrite"
    assert load_prove_config(None, {}).run_dir == "runs/prove-auto"


def test_cli_exit_codes(tmp_path, monkeypatch):
    import ponder.prove
    from ponder.cli.main import app
    from typer.testing import CliRunner

    bad = CliRunner().invoke(app, ["prove", "--env", "rewrite", "--theorem", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output

    def fake_run(rows):
        async def run_prove(cfg, on_row=None, on_event=None, on_progress=None):
            on_progress("server ready")  # the start-up phases reach the console
            for r in rows:
                on_row(r)
            return ponder.prove.ProveRun(rows, 0, 1.0, 1, {}, "rewrite")
        return run_prove

    usage = {"generated_tokens": 1, "calls": 1, "wall_seconds": 0.5}
    ok = {"id": "rw_refl", "status": "proved", "correct": True, "proof": ["reflexivity"], "usage": usage}
    err = {"id": "rw_sym_expand", "status": "error", "correct": False, "usage": usage}
    args = ["prove", "--env", "rewrite", "--run-dir", str(tmp_path / "r")]
    monkeypatch.setattr(ponder.prove, "run_prove", fake_run([ok]))
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0 and "proved 1/1" in done.output and "server ready" in done.output
    monkeypatch.setattr(ponder.prove, "run_prove", fake_run([ok, err]))
    assert CliRunner().invoke(app, args).exit_code == 1

    async def gone(cfg, on_row=None, on_event=None, on_progress=None):
        raise EngineFault("fake", "server gone")

    monkeypatch.setattr(ponder.prove, "run_prove", gone)
    stopped = CliRunner().invoke(app, args)
    assert stopped.exit_code == 3 and "resume" in stopped.output
