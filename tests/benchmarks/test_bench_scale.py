"""`ponder bench scale`'s parts: the fake replica's steps and batch against the real client and
policy, the report's arithmetic, and problems sharded over driver actors written once each."""

from __future__ import annotations

import asyncio
import time

import pytest

from benchmarks.driver import ScalePoint, completions_now, point_line, saturation_line, step_pool, workload
from benchmarks.fake_server import Replica, start_fake, start_fakes
from models.client import VLLMClient
from models.embedded import embedded_checkpoint
from models.policy import VLLMPolicy
from models.server import ServerSettings, terminate
from models.tokenizer import HFTokenizer
from search.protocols import Sampling


@pytest.fixture(scope="module")
def tokenizer():
    return HFTokenizer(embedded_checkpoint())


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    return tmp_path


async def test_the_fake_s_steps_decode_to_its_text_with_the_policy_s_tokenizer(tokenizer, state):
    pool = step_pool(tokenizer, state / "steps.json", size=40)
    rec = start_fake(ServerSettings(), replica=Replica(tokens_per_s=1e5, latency_s=0.0, steps_file=str(pool)))
    try:
        async with VLLMClient(rec.endpoint, "fake") as client:
            policy = VLLMPolicy(client, tokenizer.decode_with_offsets)
            seen = []
            for k in range(12):
                gen = await policy.propose(list(range(100, 150 + k)), Sampling(n=3, max_tokens=48, stop=("\n\n",),
                                                                              logprobs=None, seed=k))
                seen.extend(gen.proposals)
            assert policy.offset_mismatches == 0  # the text is what the ids decode to
            assert all(p.text_offsets for p in seen)
            steps = [p for p in seen if p.finish_reason == "stop"]
            answers = [p for p in seen if p.finish_reason == "eos"]
            assert steps and answers  # both kinds drawn
            assert all(p.text.endswith("\n\n") and p.stop_reason == "\n\n" for p in steps)
            assert all("\\boxed{" in p.text and p.token_ids[-1] == tokenizer.eos_token_id for p in answers)
            cut = await policy.propose([5, 6, 7], Sampling(n=2, max_tokens=3, stop=("\n\n",), logprobs=0))
            assert all(p.finish_reason == "length" and len(p.token_ids) == 3 for p in cut.proposals)
            assert all(len(p.logprobs) == 3 for p in cut.proposals)
    finally:
        terminate(rec.pid, timeout=5)


async def test_a_replica_runs_max_num_seqs_sequences_at_once_and_counts_their_time(state):
    rec = start_fake(ServerSettings(), replica=Replica(tokens_per_s=1e6, latency_s=0.3, max_num_seqs=2))
    try:
        async with VLLMClient(rec.endpoint, "fake") as client:
            started = time.perf_counter()
            await asyncio.gather(*(client.complete([1, 2, i], max_tokens=2) for i in range(4)))
            wall = time.perf_counter() - started
            text = await client.metrics()
        assert 0.55 < wall < 1.5  # two waves of two, not one of four
        busy = next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("fake:busy"))
        assert busy == pytest.approx(4 * 0.3, rel=0.05)
        assert completions_now([rec.endpoint]) == 4
    finally:
        terminate(rec.pid, timeout=5)


def test_the_report_reads_capacity_cpu_and_where_the_driver_saturates():
    fed = ScalePoint(replicas=4, problems=256, concurrent=128, requests=2000, wall_s=10, driver_cpu_s=5,
                     busy_seq_s=2400, capacity_seqs=256, machine_busy=0.5, errors=0)
    short = ScalePoint(replicas=16, problems=1024, concurrent=512, requests=4000, wall_s=10, driver_cpu_s=9.5,
                       busy_seq_s=4800, capacity_seqs=1024, machine_busy=1.0, errors=0)
    assert fed.requests_per_s == 200 and fed.cpu_share == 0.5 and fed.cpu_ms_per_request == 2.5
    assert fed.capacity_used == pytest.approx(2400 / 2560)
    assert fed.capacity_per_s == pytest.approx(256 / 1.2)  # 1.2 sequence-seconds per request
    assert short.capacity_used == pytest.approx(4800 / 10240)
    line = saturation_line([fed, short])
    assert line.startswith("driver ceiling: 400 step requests/s (at 16 replicas, driver CPU 95% of one core)")
    assert "from 16 replicas it uses 47% of their capacity" in line and "at most 421/s" in line
    assert point_line(short).split()[:4] == ["16", "1024", "512", "4000"]


def test_the_workload_is_mcts_with_prior_values_on_the_given_replicas():
    cfg = workload(100, 20, 40, ["http://127.0.0.1:1", "http://127.0.0.1:2"], "/tmp/x")
    assert (cfg.search.algorithm, cfg.search.value, cfg.tasks.size) == ("mcts", "prior", 100)
    assert (cfg.max_concurrent_problems, cfg.model.max_in_flight, cfg.model.routing) == (20, 40, "tree")


def test_problems_sharded_over_driver_actors_are_each_written_once(state, tokenizer):
    pytest.importorskip("ray")
    from benchmarks.shards import run_sharded

    pool = step_pool(tokenizer, state / "steps.json", size=40)
    records = start_fakes(ServerSettings(), 2, Replica(tokens_per_s=1e4, latency_s=0.005, steps_file=str(pool)))
    endpoints = [r.endpoint for r in records]
    try:
        cfg = workload(12, 4, 8, endpoints, str(state / "run"), simulations=2, children=2)
        run = run_sharded(cfg, 2, endpoints, lambda: completions_now(endpoints))
        assert (run.drivers, run.problems, run.rows, run.twice) == (2, 12, 12, 0)
        assert run.requests >= 12 and len(run.driver_cpu_s) == 2
        lines = (state / "run" / "results.jsonl").read_text().splitlines()
        assert len(lines) == 12
    finally:
        for r in records:
            terminate(r.pid, timeout=5)
