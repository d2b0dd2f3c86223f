"""Backups: pure updates of value statistics from a node up to the root.

Each takes the tree, the node whose value was just estimated, and that value in [0, 1];
each adds one visit to every node of the path. They differ in the value a node keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from search.tree import Node, Tree

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


def set_quality(node: Node, q: float) -> None:
    """Stores Q on a node of a self-refine search, keeping ``node.value == q`` (W = Q * N;
    Q on the self-evaluation scale [-100, 100])."""
    node.value_sum = q * max(node.visits, 1)
    if node.visits == 0:
        node.visits = 1


def add_visit(node: Node) -> None:
    """One more visit, Q unchanged."""
    q = node.value
    node.visits += 1
    node.value_sum = q * node.visits


def refine_backup(*, blend: bool, count_visits: bool) -> BackupFn:
    """Self-refine backup (spec 01 §7) from a new answer's parent up to its root (the nodes
    below node 0, which holds no answer).

    Args:
        blend: MC-NEST: ``Q(parent) = (Q(parent) + max_c Q(c)) / 2`` over its children,
            overwriting Q (a later reward sample recomputes Q from samples, as its code does).
            False: MCTSr's code, which keeps Q from samples and blends in its UCB instead.
        count_visits: MC-NEST: each node on the way gets one visit. False: MCTSr, where N is
            the number of reward samples.
    """

    def backup(tree: Tree, node_id: int, value: float) -> None:
        current = tree.nodes[node_id].parent
        while current is not None and current != 0:
            node = tree.nodes[current]
            if blend:
                best = max(tree.nodes[c].value for c in node.children)
                set_quality(node, 0.5 * (node.value + best))
            if count_visits:
                add_visit(node)
            current = node.parent

    return backup
