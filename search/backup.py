"""Backups: pure updates of value statistics from a node up to the root.

Each takes the tree, the node whose value was just estimated, and that value in [0, 1];
each adds one visit to every node of the path. They differ in the value a node keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from search.tree import Tree

BackupRule = Literal["mean", "max", "visit_weighted"]
BackupFn = Callable[[Tree, int, float], None]


def mean_backup(tree: Tree, node_id: int, value: float) -> None:
    """AlphaMath: every node of the path gets N += 1, W += v (Q is the running mean)."""
    current: int | None = node_id
    while current is not None:
        node = tree.nodes[current]
        node.visits += 1
        node.value_sum += value
        current = node.parent


def max_backup(tree: Tree, node_id: int, value: float) -> None:
    """Every node of the path gets N += 1 and keeps Q = max(Q, v) (best value below it)."""
    current: int | None = node_id
    while current is not None:
        node = tree.nodes[current]
        best = max(node.value, value) if node.visits else value
        node.visits += 1
        node.value_sum = best * node.visits
        current = node.parent


def visit_weighted_backup(tree: Tree, node_id: int, value: float) -> None:
    """ReST-MCTS* (spec 02 §3): the node adds (1, v); each ancestor gets N += 1 and
    Q = Σ_c N(c)·Q(c) / Σ_c N(c) over its visited children."""
    node = tree.nodes[node_id]
    node.visits += 1
    node.value_sum += value
    current = node.parent
    while current is not None:
        node = tree.nodes[current]
        visited = [tree.nodes[c] for c in node.children if tree.nodes[c].visits]
        total = sum(c.visits for c in visited)
        q = sum(c.value_sum for c in visited) / total
        node.visits += 1
        node.value_sum = q * node.visits
        current = node.parent


def backup_fn(rule: BackupRule) -> BackupFn:
    """The backup for ``rule``."""
    match rule:
        case "mean":
            return mean_backup
        case "max":
            return max_backup
        case "visit_weighted":
            return visit_weighted_backup
