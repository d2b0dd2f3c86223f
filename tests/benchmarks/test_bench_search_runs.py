"""Pure helpers of the search benchmarks (no server): counter deltas, rates, presets, reports."""

from __future__ import annotations

import pytest

from benchmarks.server import PREFIX_HITS, PREFIX_QUERIES
from benchmarks.metrics import (
    GENERATED,
    PROMPT,
    SEQUENCES,
    Sample,
    cache_hit_rate,
    counter_delta,
    normalised_wall_ratio,
    queued_rate,
    ratio,
    timeline,
    window_rate,
)
from benchmarks.search_runs import RunMeasure, override
from benchmarks.suite import (
    AccuracyPoint,
    accuracy_entries,
    accuracy_plot,
    accuracy_table,
    accuracy_tasks,
    baseline_entries,
    compare_configs,
    throughput_config,
)
from search.protocols import ConfigError


def test_counter_delta_and_hit_rate_use_the_growth_between_snapshots():
    before = {PREFIX_QUERIES: 1000.0, PREFIX_HITS: 900.0}
    after = {PREFIX_QUERIES: 1400.0, PREFIX_HITS: 1200.0, GENERATED: 50.0}
    assert counter_delta(before, after, GENERATED) == 50.0
    assert cache_hit_rate(before, after) == pytest.approx(300 / 400)  # not 1200 / 1400
    assert cache_hit_rate(before, before) is None
    assert ratio(1.0, 0.0) is None


def test_window_rate_skips_the_ramp_and_the_tail():
    # 10 s ramp at 10 tok/s, then 1000 tokens in 10 s (100 tok/s), then a 20 s tail at 5 tok/s.
    samples = [Sample(0, 0, 0, 0), Sample(10, 100, 0, 0), Sample(20, 1100, 0, 0), Sample(40, 1200, 0, 0)]
    # 10% of 1200 = 120 tokens at t = 10.2 s; 90% = 1080 tokens at t = 19.8 s.
    assert window_rate(samples) == pytest.approx(960 / 9.6)
    assert window_rate(samples, 0.0, 1.0) == pytest.approx(1200 / 40)
    assert window_rate(samples[:1]) is None
    assert window_rate([Sample(0, 0, 0, 0), Sample(5, 0, 0, 0)]) is None


def test_normalised_wall_ratio_is_seconds_per_token_of_a_over_b():
    assert normalised_wall_ratio(30.0, 1000, 20.0, 2000) == pytest.approx(3.0)
    assert normalised_wall_ratio(30.0, 0, 20.0, 2000) is None


def test_throughput_presets_are_step_beam_on_both_workloads():
    for workload, task in (("gsm_symbolic", "gsm_symbolic"), ("chain_sum", "chain_sum")):
        cfg = throughput_config(4, workload)
        assert cfg.tasks.name == task and cfg.tasks.size == 4 and cfg.search.algorithm == "step_beam"
    with pytest.raises(ConfigError, match="workload"):
        throughput_config(4, "sudoku")


def test_override_merges_nested_fields_and_validates():
    cfg = throughput_config(8)
    out = override(cfg, {"model": {"endpoints": ["http://h:1"], "max_in_flight": 512}, "max_concurrent_problems": 8})
    assert out.model.endpoints == ["http://h:1"] and out.model.max_in_flight == 512
    assert out.model.system_prompt == cfg.model.system_prompt  # untouched siblings survive the merge
    assert out.search == cfg.search and out.max_concurrent_problems == 8
    with pytest.raises(Exception, match="max_in_flight"):
        override(cfg, {"model": {"max_in_flight": 0}})


def _measure(rows, wall=10.0, samples=()):
    before = {GENERATED: 100.0, PREFIX_QUERIES: 0.0, PREFIX_HITS: 0.0}
    after = {GENERATED: 1100.0, PREFIX_QUERIES: 500.0, PREFIX_HITS: 400.0}
    return RunMeasure("x", throughput_config(2), rows, {}, wall, 3, before, after, list(samples), 1.0)


def test_run_measure_shares():
    usage = {"cached_prompt_tokens": 30, "prompt_tokens": 40}
    rows = [{"usage": usage, "bookkeeping_seconds": 0.02}, {"usage": usage, "bookkeeping_seconds": 0.03}]
    m = _measure(rows, samples=[Sample(0, 0, 1, 2), Sample(1, 10, 5, 4), Sample(2, 20, 0, 0)])
    assert m.server_generated == 1000.0 and m.tok_per_s == 100.0
    assert m.hit_rate_metrics == pytest.approx(0.8) and m.hit_rate_usage == pytest.approx(0.75)
    assert m.bookkeeping_share == pytest.approx(0.005)
    assert m.peak_server_requests == 9.0


def test_run_measure_shape_is_per_sequence_at_the_server():
    m = _measure([])
    assert m.shape is None  # no finished sequence counted
    m.before.update({PROMPT: 0.0, SEQUENCES: 10.0})
    m.after.update({PROMPT: 2000.0, SEQUENCES: 30.0})
    assert m.shape == (100, 80, 50)  # 2000 prompt / 20, (2000 - 400 cached) / 20, 1000 generated / 20


def test_compare_presets_match_beam_width_times_children_to_n():
    bon, beam = compare_configs(4, num_samples=8, budget=500, beam_width=2)
    assert bon.search.num_samples == 8 and beam.search.beam_width * beam.search.num_children == 8
    assert bon.tasks == beam.tasks and bon.budget == beam.budget and bon.reward == beam.reward
    with pytest.raises(ValueError, match="multiple"):
        compare_configs(4, num_samples=8, beam_width=3)


def test_accuracy_entries_size_sampling_to_the_budget_and_share_it():
    entries = accuracy_entries(accuracy_tasks(4), budget=400, tokens_per_chain=50.0)
    by = {e.algorithm: e for e in entries}
    assert set(by) == {"self_consistency", "best_of_n", "step_beam", "best_first", "mcts",
                       "mc_nest_is", "mc_nest_greedy", "mc_nest_pairwise", "mctsr"}
    # self-refine searches evaluate with the policy itself (counted in the budget), no reward model
    assert by["mctsr"].cfg.search.algorithm == "mctsr" and by["mc_nest_greedy"].cfg.search.selection == "greedy"
    assert by["mc_nest_is"].cfg.reward is None and by["mctsr"].cfg.reward is None
    assert by["self_consistency"].cfg.search.num_samples == 8 == by["best_of_n"].cfg.search.num_samples
    assert {e.cfg.budget.max_generated_tokens for e in entries} == {400}
    assert by["best_of_n"].cfg.reward is not None and by["mcts"].cfg.reward is not None
    assert by["step_beam"].cfg.reward is None and by["best_first"].cfg.reward is None
    assert all(e.cfg.mode == "solve" for e in entries)


def test_accuracy_table_and_plot(tmp_path):
    points = [AccuracyPoint("cot", None, "greedy", 10, 0.5, 40, 0, 1, 2.0),
              AccuracyPoint("mcts", 100, "self_eval", 10, 0.3, 110, 900, 9, 5.0),
              AccuracyPoint("mcts", 300, "self_eval", 10, 0.6, 290, 2000, 20, 9.0)]
    table = accuracy_table(points).splitlines()
    assert len(table) == 4 and table[1].split()[:4] == ["cot", "-", "greedy", "0.500"]
    assert table[2].split()[4] == "0.145"  # sqrt(0.3 * 0.7 / 10)
    png = accuracy_plot(points, tmp_path / "sub" / "acc.png", "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timeline_buckets_rates_peaks_kv_usage_and_preemptions():
    samples = [Sample(0, 0, 1, 0), Sample(2, 20, 4, 9, 0.5, 2), Sample(5, 50, 3, 1, 0.9, 7), Sample(7, 70, 2, 0, 1.0, 9),
               Sample(10, 80, 0, 0, 0.2, 9)]
    assert timeline(samples, 5.0) == [(0, 10.0, 4, 9, 0.9, 7), (5, 6.0, 3, 1, 1.0, 2)]
    assert timeline([]) == []


def test_baselines_are_greedy_cot_and_an_uncapped_pilot():
    cot, pilot = baseline_entries(accuracy_tasks(4))
    assert cot.cfg.search.algorithm == "cot" and cot.budget is None and cot.cfg.reward is None
    assert pilot.cfg.search.algorithm == "self_consistency" and pilot.cfg.search.num_samples == 4
    assert cot.cfg.steps.fixed_tokens == 16 and cot.cfg.steps.delimiter is None


def test_queued_rate_counts_only_intervals_that_began_with_a_queue():
    samples = [Sample(0, 0, 10, 5), Sample(2, 200, 10, 0), Sample(4, 240, 3, 0), Sample(5, 300, 10, 2), Sample(6, 400, 1, 0)]
    assert queued_rate(samples) == pytest.approx((200 + 100) / 3)
    assert queued_rate([Sample(0, 0, 1, 0), Sample(1, 5, 1, 0)]) is None


def test_throughput_and_compare_reports_state_the_ratios():
    from benchmarks.search_runs import compare_lines, throughput_lines
    from benchmarks.server import BenchRow

    def load(tok_s):
        return [BenchRow(load="throughput", concurrency=128, requests=128, prompt_tokens=0, generated_tokens=1,
                         seconds=1.0, tokens_per_second=tok_s, mean_latency_s=1.0)]

    usage = {"cached_prompt_tokens": 30, "prompt_tokens": 40, "generated_tokens": 50, "calls": 2}
    samples = [Sample(0, 0, 1, 0), Sample(5, 500, 4, 2), Sample(10, 1000, 0, 0)]
    m = _measure([{"usage": usage, "bookkeeping_seconds": 0.01}], samples=samples)
    m.summary = {"problems": 1, "accuracy": 1.0, "errors": 0, "generated_tokens": 50, "prompt_tokens": 40,
                 "calls": 2, "reward_tokens": 0}
    steady = "\n".join(throughput_lines(load(200.0), load(200.0), m, None, [128]))
    assert "saturated generated tok/s: 200.0" in steady and "sustained / saturated tok/s: 0.50" in steady
    assert "-- search run: 1 problems" in steady and "WARNING" not in steady and "prefix-cache hit rate (/metrics): 80.0%" in steady
    drifted = "\n".join(throughput_lines(load(200.0), load(100.0), m, None, [128]))
    assert "WARNING: the saturated figure moved 50%" in drifted
    slow = _measure(m.rows)
    slow.summary, slow.wall_seconds = {**m.summary, "generated_tokens": 100}, 30.0
    report = "\n".join(compare_lines(m, slow))
    assert report.count("[x] problems=1") == 2 and "beam/BoN wall per policy-generated token: 1.50x" in report
