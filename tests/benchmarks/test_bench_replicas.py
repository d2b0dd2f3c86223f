"""`ponder bench replicas`: the report's arithmetic, the ceiling server's settings, and the
command end to end on fake replicas (the real scheduler, client and answer checker)."""

from __future__ import annotations

import contextlib
import re

import pytest

from benchmarks.replicas import CEILING, RoutingRun, ceiling_settings, few_shot_prompt, lines, workload
from models.server_settings import ServerSettings


def test_the_report_compares_hit_rate_and_computed_tokens():
    req = RoutingRun("request", queried=1000, hits=400, generated=500, wall_s=10, problems=4,
                     per_replica_queried=(500, 500), cache_reset=True, sequences=40)
    tree = RoutingRun("tree", queried=1000, hits=900, generated=500, wall_s=8, problems=4,
                      per_replica_queried=(480, 520), cache_reset=False)
    out = lines([req, tree])
    assert req.computed == 600 and tree.computed == 100
    assert "40.0%" in out[1] and "500 / 500" in out[1] and " 15.0 " in out[1]  # 600 computed over 40 sequences
    assert "90.0%" in out[2] and "NOT reset" in out[2] and " n/a " in out[2]  # no sequences counted
    assert out[3] == ("tree vs request: hit rate 90.0% vs 40.0%; prompt tokens computed per queried token "
                      "0.100 vs 0.600; generated tok/s 62.5 vs 50.0")
    assert len(out) == 4  # no ceiling run, no ceiling lines


def test_the_report_sets_each_routing_against_the_one_server_ceiling():
    req = RoutingRun("request", queried=1000, hits=800, generated=5, wall_s=1, problems=1,
                     per_replica_queried=(500, 500), cache_reset=True)
    tree = RoutingRun("tree", queried=1000, hits=880, generated=5, wall_s=1, problems=1,
                      per_replica_queried=(500, 500), cache_reset=True)
    one = RoutingRun(CEILING, queried=1000, hits=900, generated=5, wall_s=1, problems=1,
                     per_replica_queried=(1000,), cache_reset=True)
    out = lines([req, tree, one])
    assert out[3].startswith("1 server ") and out[3].endswith("1000")
    assert out[5] == ("tree vs 1 server (ceiling): hit rate 88.0% vs 90.0%; prompt tokens computed per queried "
                      "token 0.120 vs 0.100 (routing lost +0.020)")
    assert out[6].startswith("request vs 1 server (ceiling): hit rate 80.0% vs 90.0%") and out[6].endswith("(routing lost +0.100)")


def test_the_ceiling_server_has_all_the_cores_and_the_replicas_kv_cache_together():
    one = ceiling_settings(ServerSettings(kv_cache_gib=1, block_size=16, omp_threads_bind="0"), 2)
    assert one.kv_cache_gib == 2 and one.omp_threads_bind == "auto" and one.block_size == 16
    default = ceiling_settings(ServerSettings(dtype="float32"), 3)
    assert default.kv_cache_gib == 12  # 4 GiB each in float32, the setting's default


def test_the_workload_is_an_mcts_run():
    cfg = workload(4)
    assert cfg.search.algorithm == "mcts" and cfg.tasks.size == 4
    assert workload(4, "Be brief.").model.system_prompt == "Be brief."
    assert workload(4).model.system_prompt == cfg.model.system_prompt != "Be brief."


def test_the_few_shot_prompt_solves_training_split_problems_none_of_the_workloads():
    from verifiers.planted import is_heldout
    from verifiers.tasks import load_tasks

    workload_questions = [p.question for p in load_tasks(workload(64).tasks).problems]
    prompt = few_shot_prompt(4, "Solve it.", exclude=workload_questions)
    instruction, *blocks = prompt.split("\n\nExample ")
    assert instruction == "Solve it." and len(blocks) == 4
    for k, block in enumerate(blocks, 1):
        question, *steps = block.split("\n\n")
        assert question.startswith(f"{k}. State the final answer")
        question = question.split(". ", 1)[1]
        assert not is_heldout("chain_sum", question) and question not in workload_questions
        terms = question.split(": ")[1].rstrip(" =")
        answer = eval(terms)  # noqa: S307 - two-digit sums written by reasoning-gym
        assert len(steps) == 2 and steps[-1].endswith(f". The answer is {answer}.")  # 3 terms, 2 operations
    assert few_shot_prompt(4, "Solve it.", exclude=workload_questions) == prompt  # the same examples each time
    first = blocks[0].split("\n\n")[0].split(". ", 1)[1]
    assert first not in few_shot_prompt(4, "Solve it.", exclude=[*workload_questions, first])
    with pytest.raises(ValueError, match="at least one"):
        few_shot_prompt(0)
    with pytest.raises(ValueError, match="only"):
        few_shot_prompt(5, scan=4)


def test_the_report_counts_the_problems_tree_routing_moved():
    run = RoutingRun("tree", queried=10, hits=5, generated=5, wall_s=1, problems=1, per_replica_queried=(5, 5),
                     cache_reset=True, moves=(("down", 1), ("saturated", 3)))
    assert lines([run])[1].endswith("5 / 5; moved 1 (down), 3 (saturated)")


@pytest.fixture
def fake_replicas(tmp_path, monkeypatch):
    """models.replicas' starters replaced by fake servers (their steps decode with the policy's
    tokenizer); yields the settings each start was asked for."""
    import models.replicas as replicas_mod
    from benchmarks.driver import step_pool
    from benchmarks.fake_server import Replica, start_fakes
    from models.embedded import embedded_checkpoint
    from models.managed import ManagedServer, owned_servers
    from models.tokenizer import HFTokenizer

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    pool = step_pool(HFTokenizer(embedded_checkpoint()), tmp_path / "steps.json", size=40)
    replica = Replica(tokens_per_s=1e5, latency_s=0.0, steps_file=str(pool), block_size=16)
    asked: list[tuple[str, int, ServerSettings]] = []

    @contextlib.contextmanager
    def ensure(n, settings, *, on_progress=None):
        asked.append(("ensure", n, settings))
        servers = [ManagedServer(settings.model_copy(update={"omp_threads_bind": str(i)}), rec, owned=True,
                                 recorded=False) for i, rec in enumerate(start_fakes(settings, n, replica))]
        with owned_servers(servers):
            yield servers

    def start(n, settings, *, on_progress=None, **_):
        asked.append(("start", n, settings))
        return [(settings, rec) for rec in start_fakes(settings, n, replica)]

    monkeypatch.setattr(replicas_mod, "ensure_replicas", ensure)
    monkeypatch.setattr(replicas_mod, "start_replicas", start)
    return asked


def test_the_command_runs_both_routings_then_the_ceiling_on_one_server(fake_replicas):
    from typer.testing import CliRunner

    from ponder.cli.main import app

    result = CliRunner().invoke(app, ["bench", "replicas", "--replicas", "2", "--problems", "4", "--block-size", "16",
                                      "--ceiling"])
    assert result.exit_code == 0, result.output
    (kind, n, settings), (kind2, n2, one) = fake_replicas
    assert (kind, n, settings.kv_cache_gib, settings.block_size) == ("ensure", 2, 1, 16)
    assert (kind2, n2, one.kv_cache_gib, one.omp_threads_bind, one.block_size) == ("start", 1, 2, "auto", 16)
    rows = {line.split("  ")[0].strip(): line for line in result.output.splitlines()
            if re.match(r"^(request|tree|1 server) +4 ", line)}
    assert set(rows) == {"request", "tree", "1 server"}, result.output
    assert " / " in rows["request"] and " / " in rows["tree"]  # two replicas' prompt tokens
    assert " / " not in rows[CEILING].split("  ")[-1]  # one server's
    assert all("%" in r for r in rows.values())  # each measured a hit rate
    assert "tree vs 1 server (ceiling): hit rate" in result.output
    assert "request vs 1 server (ceiling): hit rate" in result.output


def test_without_ceiling_the_command_starts_no_further_server(fake_replicas, monkeypatch):
    from typer.testing import CliRunner

    import benchmarks.replicas as bench
    from ponder.cli.main import app

    prompts: list[str | None] = []
    measure = bench.measure

    async def recording(cfg, *args, **kwargs):
        prompts.append(cfg.model.system_prompt)
        return await measure(cfg, *args, **kwargs)

    monkeypatch.setattr(bench, "measure", recording)
    result = CliRunner().invoke(app, ["bench", "replicas", "--replicas", "2", "--problems", "2", "--order", "tree",
                                      "--shots", "3", "--system-prompt", "Solve it."])
    assert result.exit_code == 0, result.output
    assert [k for k, _, _ in fake_replicas] == ["ensure"]
    assert "ceiling" not in result.output
    assert "3 worked examples; the first problem's prompt is" in result.output
    assert len(prompts) == 2 and prompts[0] == prompts[1]  # the untimed run and the measured one
    assert prompts[0].startswith("Solve it.\n\nExample 1. ") and "Example 3. " in prompts[0]
