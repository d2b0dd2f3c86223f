"""Answer aggregation: pure functions from candidate paths to one answer.

Answers are compared as exact strings, so ``extract_fn`` should return a canonical form.
Ties always go to the candidate seen first, which keeps results deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from search.tree import Tree


def weighted_vote(answers: Sequence[str | None], weights: Sequence[float]) -> str | None:
    """The answer with the largest summed weight (None answers are ignored).

    Args:
        answers: One extracted answer per candidate (None when nothing was extracted).
        weights: One weight per candidate, e.g. a PRM score in [0, 1].

    Returns:
        The winning answer, or None when no candidate has one.
    """
    totals: dict[str, float] = {}
    for answer, weight in zip(answers, weights, strict=True):
        if answer is not None:
            totals[answer] = totals.get(answer, 0.0) + weight
    if not totals:
        return None
    best = max(totals.values())
    return next(a for a, total in totals.items() if total == best)


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """Self-consistency: the most frequent answer (ties: first seen), None if none."""
    return weighted_vote(answers, [1.0] * len(answers))


def end_leaves(tree: Tree) -> list[int]:
    """Nodes where a path ended: terminal (EOS / max depth) or closed by an end gate; errored
    nodes excluded. A finished search's candidate solutions: solve mode aggregates the
    answered ones, label mode verifies them all, the SFT export keeps the correct ones."""
    return [n.id for n in tree.nodes if n.id != 0 and (n.terminal or n.end) and n.error is None]


def answered_terminals(tree: Tree, node_ids: Sequence[int] | None = None) -> list[int]:
    """Terminal nodes with an extracted answer, among ``node_ids`` (default: the tree)."""
    ids = range(len(tree)) if node_ids is None else node_ids
    return [i for i in ids if tree.nodes[i].terminal and tree.nodes[i].answer is not None]


def best_node(node_ids: Sequence[int], key: Callable[[int], float]) -> int | None:
    """The id with the largest ``key`` (ties: first in ``node_ids``), None if empty."""
    best: int | None = None
    for i in node_ids:
        if best is None or key(i) > key(best):
            best = i
    return best


def best_leaf(tree: Tree, key: Callable[[int], float]) -> int | None:
    """The leaf with the largest ``key``."""
    return best_node(tree.leaves(), key)


def best_terminal(tree: Tree, key: Callable[[int], float], node_ids: Sequence[int] | None = None) -> int | None:
    """The answered terminal with the largest ``key`` (e.g. its value), None if none."""
    return best_node(answered_terminals(tree, node_ids), key)


def vote_path(tree: Tree, node_ids: Sequence[int], weights: Sequence[float]) -> int | None:
    """Weighted vote over answered nodes; returns the heaviest node holding the winner."""
    answers = [tree.nodes[i].answer for i in node_ids]
    winner = weighted_vote(answers, weights)
    if winner is None:
        return None
    weight_of = dict(zip(node_ids, weights))
    return best_node([i for i, a in zip(node_ids, answers) if a == winner], weight_of.__getitem__)
