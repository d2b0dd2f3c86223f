"""The engine bench (benchmarks.engine): a synthetic tree and select + backup ops/s, no model."""

from __future__ import annotations

from benchmarks.engine import build_tree, select_backup_rate


def test_build_tree_grows_at_least_the_asked_size():
    tree = build_tree(num_nodes=200, num_children=4)
    assert 200 <= len(tree) < 200 + 4


def test_select_backup_rate_measures():
    assert select_backup_rate(num_nodes=200, seconds=0.01) > 0
