"""bench parallel's arithmetic and presets (the measured runs need a server: not unit-tested)."""

import json

import pytest

from benchmarks.parallel import (accuracy_se, arms, beam_config, mcts_config, paired_difference, read_parallel,
                                 saturation_point)
from benchmarks.server import BenchRow


def row(c, tok_s, load="throughput"):
    return BenchRow(load, c, 2 * c, 32, 64, 1.0, tok_s, 0.5)


def test_saturation_point_is_the_smallest_concurrency_near_the_best():
    rows = [row(4, 100.0), row(8, 180.0), row(16, 205.0), row(32, 210.0), row(8, 999.0, "shared_prefix")]
    assert saturation_point(rows) == (16, 210.0)  # 205 >= 0.9 * 210, 180 is not
    assert saturation_point(rows, within=0.2) == (8, 210.0)


def test_accuracy_and_paired_difference_with_standard_errors():
    acc, se = accuracy_se([True, False, True, True])
    assert acc == 0.75 and se == pytest.approx((0.75 * 0.25 / 4) ** 0.5)
    a = {"p0": True, "p1": False, "p2": False, "p3": True}
    b = {"p0": True, "p1": True, "p2": False, "p3": True, "p9": True}  # p9 only in b: not paired
    diff, se, n = paired_difference(a, b)
    assert n == 4 and diff == 0.25 and se == pytest.approx((0.25 / 4) ** 0.5)


def test_arms_switch_adaptive_parallelism_on_only_in_the_second_run():
    (l1, fixed), (l2, adaptive) = arms(mcts_config(4), 6)
    assert (l1, l2) == ("mcts fixed", "mcts adaptive")
    assert not fixed.search.adaptive_parallel and fixed.search.num_parallel == 1
    assert adaptive.search.adaptive_parallel and adaptive.search.max_parallel == 6
    assert (fixed.search.num_simulations, fixed.search.num_children, fixed.search.value) == (10, 3, "prior")
    assert fixed.steps.max_depth == 6 and fixed.tasks == adaptive.tasks
    (_, beam_fixed), (_, beam_adaptive) = arms(beam_config(4), 6)
    assert not beam_fixed.search.adaptive_parallel and beam_adaptive.search.max_width == 6


def test_read_parallel_takes_each_traces_record(tmp_path):
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "a.json").write_text(json.dumps({"extra": {"parallel": {"max_in_flight": 3}}}))
    (tmp_path / "traces" / "b.json").write_text(json.dumps({"extra": {}}))
    assert read_parallel(tmp_path) == [{"max_in_flight": 3}]


def measure(label, cfg, correct, tokens, wall, generated, per_row=None):
    from benchmarks.metrics import GENERATED
    from benchmarks.search_runs import RunMeasure

    per_row = per_row or [tokens // len(correct)] * len(correct)
    rows = [{"id": f"p{i}", "status": "ok", "correct": c, "usage": {"generated_tokens": t}}
            for i, (c, t) in enumerate(zip(correct, per_row))]
    return RunMeasure(label, cfg, rows, {"generated_tokens": tokens}, wall, 8, {GENERATED: 0.0},
                      {GENERATED: generated}, [], 0.0)


def test_matching_cap_cuts_the_adaptive_problems_to_the_fixed_total():
    from benchmarks.parallel import matching_cap

    assert matching_cap([100, 200, 900], 600) == 300  # 100 + 200 + 300
    assert matching_cap([100, 200, 900], 599) == 299  # the smallest cap reaching the total
    assert matching_cap([100, 200, 900], 301) == 101
    assert matching_cap([100, 200], 500) == 200  # nothing to cut


def test_the_matched_run_caps_tokens_only_when_adaptive_spent_more_than_ten_percent_more():
    from benchmarks.parallel import matched_arm

    (_, fixed_cfg), (_, adaptive_cfg) = arms(mcts_config(4), 6)
    fixed = measure("mcts fixed", fixed_cfg, [True, False, True, False], 1000, 10.0, 1000)
    near = measure("mcts adaptive", adaptive_cfg, [True] * 4, 1080, 10.0, 1080)
    assert matched_arm(adaptive_cfg, fixed, near) is None  # 1.08x: already at equal tokens
    fewer = measure("mcts adaptive", adaptive_cfg, [True] * 4, 800, 10.0, 800)
    assert matched_arm(adaptive_cfg, fixed, fewer) is None  # a cap cannot add tokens
    more = measure("mcts adaptive", adaptive_cfg, [True] * 4, 1500, 10.0, 1500, per_row=[100, 200, 400, 800])
    label, cfg, cap = matched_arm(adaptive_cfg, fixed, more)
    assert (label, cap) == ("mcts adaptive matched", 350)  # 100 + 200 + 350 + 350 = 1000
    assert cfg.budget.max_generated_tokens == 350 and cfg.search.adaptive_parallel and cfg.tasks == fixed_cfg.tasks
    (_, beam_fixed_cfg), (_, beam_adaptive_cfg) = arms(beam_config(4), 6)  # the preset's own cap 4000 stays lower
    _, cfg, cap = matched_arm(beam_adaptive_cfg, measure("f", beam_fixed_cfg, [True], 9000, 1.0, 9000),
                              measure("a", beam_adaptive_cfg, [True, True], 20000, 1.0, 20000, [10000, 10000]))
    assert cap == 4000 and cfg.budget.max_generated_tokens == 4000


def test_target_lines_judge_saturation_the_recorded_peer_and_matched_accuracy():
    from benchmarks.parallel import target_lines, within_noise

    (_, fixed_cfg), (_, adaptive_cfg) = arms(mcts_config(4), 6)
    runs = [("mcts fixed", measure("mcts fixed", fixed_cfg, [True, False, True, False], 1000, 40.0, 1000 * 8)),
            ("mcts adaptive", measure("mcts adaptive", adaptive_cfg, [True] * 4, 1300, 18.0, 3888.0)),
            ("mcts adaptive matched", measure("mcts adaptive matched", adaptive_cfg, [True, False, True, True],
                                              990, 16.0, 990 * 9))]
    text = "\n".join(target_lines(runs, saturated=240.0))
    assert "mcts fixed: 0.83 of saturated (below the 0.85 target)" in text  # 8000 tok / 40 s = 200 tok/s
    assert "mcts adaptive: 0.90 of saturated (meets the 0.85 target)" in text  # 3888 / 18 = 216 tok/s
    assert "recorded 202.4 s is for 32 problems: not compared with a 4-problem run" in text and "x (" not in text
    assert "accuracy at matched tokens (0.99x the fixed run's): +0.250 ± 0.250 (paired, n=4): within 2 SE" in text
    (_, fixed_cfg), (_, adaptive_cfg) = arms(mcts_config(32), 6)  # the workload LLM Reasoners' figure is for
    runs = [("mcts fixed", measure("mcts fixed", fixed_cfg, [True, False] * 16, 1000, 40.0, 8000)),
            ("mcts adaptive", measure("mcts adaptive", adaptive_cfg, [True] * 32, 1300, 18.0, 3888.0))]
    text = "\n".join(target_lines(runs, saturated=240.0))
    assert "202.4 s / 18.0 s = 11.2x (meets the 10x target" in text
    assert "202.4 s / 40.0 s = 5.1x (below" in text
    assert within_noise(0.0, 0.0) and not within_noise(0.1, 0.0) and not within_noise(0.5, 0.2)


def test_arm_lines_say_where_the_fill_went():
    from benchmarks.metrics import Sample
    from benchmarks.parallel import arm_lines, server_fill

    (_, _), (_, adaptive_cfg) = arms(mcts_config(2), 6)
    m = measure("mcts adaptive", adaptive_cfg, [True, False], 600, 10.0, 1200)
    for r, calls, ended in zip(m.rows, (3, 5), (2.0, 8.0)):
        r["usage"].update(calls=calls, wall_seconds=ended)
    m.client_cpu_seconds = 2.5
    # running 8 for 2 s, 2 for 6 s, 0 for 2 s: time-weighted (16 + 12) / 10
    m.samples[:] = [Sample(0.0, 0, 8, 0), Sample(2.0, 0, 2, 0), Sample(8.0, 0, 0, 0), Sample(10.0, 0, 0, 0)]
    assert server_fill(m) == (pytest.approx(2.8), 8)
    trees = [{"extra": 2, "max_in_flight": 3, "mean_in_flight": 1.5, "waits": 0, "no_free_leaf": 4},
             {"extra": 0, "max_in_flight": 1, "mean_in_flight": 1.0, "waits": 1, "no_free_leaf": 0}]
    text = "\n".join(arm_lines("mcts adaptive", m, trees, saturated=240.0))
    assert "120.0 tok/s = 0.50 of saturated" in text and "(300 per problem, 4.0 calls)" in text
    assert "widened 1; in flight per tree: max 3, mean of means 1.25" in text
    assert "waited on a node under expansion 1, times a tree had room but no free leaf 4" in text
    assert "time-weighted mean 2.8, peak 8" in text and "used 0.25 of a core" in text
    assert "half the problems had ended at 2.0 s (0.20 of the wall), 90 % at 8.0 s (0.80)" in text
    assert "the longest problem: 5 calls in 8.0 s (1.6 s a call), 300 tokens" in text


async def test_the_fake_bench_runs_both_arms_against_one_fake_replica(tmp_path, monkeypatch):
    from benchmarks.parallel import fake_lines

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    lines = await fake_lines([mcts_config(4)], 4, 0.5, 16, 64, tokens_per_s=400.0)
    assert "fake replica" in lines[0] and "16 sequences at once" in lines[0] and "target_in_flight 16" in lines[0]
    fixed, adaptive = lines[1:]
    assert fixed.startswith("[mcts fixed] wall") and adaptive.startswith("[mcts adaptive] wall")
    assert "4 problems" in fixed and "trees widened 0" in fixed and "waited on a node under expansion 0" in adaptive
    used = [float(line.split("capacity used ")[1].split()[0]) for line in (fixed, adaptive)]
    assert all(0.0 < u <= 1.0 for u in used)


async def test_the_replay_sends_the_recorded_requests_again_within_the_sequences_and_measures_the_server(tmp_path,
                                                                                                       monkeypatch):
    from benchmarks.fake_server import Replica, start_fake
    from benchmarks.replay import ceiling_lines, recorded_requests, replay_ceiling
    from models.client import VLLMClient
    from models.server import ServerSettings, terminate

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    original = VLLMClient.request
    rec = start_fake(ServerSettings(), replica=Replica(tokens_per_s=200.0, latency_s=0.01, max_num_seqs=64))
    try:
        async with VLLMClient([rec.endpoint], "fake") as client:
            with recorded_requests() as sent:
                await client.complete([1, 2, 3], n=3, max_tokens=8)
                await client.complete([1, 2, 4], n=2, max_tokens=8)
            assert VLLMClient.request is original  # restored
            assert [p["n"] for p in sent] == [3, 2] and sent[0]["prompt"] == [1, 2, 3]
            await client.complete([9], max_tokens=4)
            assert len(sent) == 2  # nothing recorded once closed

            running: list[float] = []
            real = client.request

            async def spy(method, path, payload=None, **kw):
                if path == "/v1/completions":
                    running.append(payload["n"])
                    try:
                        return await real(method, path, payload, **kw)
                    finally:
                        running.append(-payload["n"])
                return await real(method, path, payload, **kw)

            client.request = spy
            ceiling = await replay_ceiling(client, sent, sequences=4, seconds=1.0, warmup_s=0.3)
    finally:
        terminate(rec.pid, timeout=5)
    assert ceiling.sequences == 4 and ceiling.requests > 4 and ceiling.window_s >= 1.0
    level = peak = 0
    for d in running:  # never more than 4 sequences in flight (3 + 2 would be 5: it waits)
        level += d
        peak = max(peak, level)
    assert peak <= 4
    # 4 sequences x 200 tok/s at most; 8 tokens per sequence leaves room for the per-request latency
    assert 0 < ceiling.tokens_per_second <= 4 * 200.0 * 1.2
    assert "of this ceiling" in ceiling_lines("mcts fixed", ceiling, _measure(100.0), 1000.0)[0]


def _measure(tok_s):
    class M:
        rows = [{}] * 3
        tok_per_s = tok_s
    return M()
