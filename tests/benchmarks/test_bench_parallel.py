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
