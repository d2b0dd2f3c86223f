"""Tabular uniform-policy Q from a sampled tree (spec 06 §6): pure functions, no torch.

THIS IS AN ENGINEERING EXTRAPOLATION, NOT THE PAPER. ROVER (arXiv 2509.24981) parameterises
Q by the policy's log-probabilities and bootstraps from the mean over the whole vocabulary
(:func:`training.rl.losses.rover_loss`). When the batch comes from a tree (TreePO segments
or a search tree) whose leaves are verified, the uniform-policy value can instead be read
off the tree itself:

- a leaf (a trajectory's end) is worth its reward R (e.g. 1 correct, 0 not);
- an internal node s with distinct children c_1..c_k: V_u(s) = (1/k) sum_j Q_u(s, c_j), the
  MEAN over the EXPANDED children; Q_u(s, c) = V_u(c) (no reward on non-terminal steps);
- a trajectory that ends at a node that also has children counts as one more child there;
- unverifiable leaves (``known`` False, e.g. truncated) are unknown, not 0: they are left
  out of their parent's mean, and a node with no known child is unknown (None).

It is the Q of the policy that is uniform over the SAMPLED candidates, not over the
vocabulary; unexpanded actions are missing. Exact corollary (Thm 3.1): Q_u(s, c) > 0 iff a
correct leaf lies below c. Values are mean-centred by the mean reward of the prompt's known
leaves when used as targets (mirroring r~). Contrast MCTS backups (visit-weighted), which
value the sampling policy, not pi_u.

Duplicate steps: node identity is the path prefix, so passing segment CONTENTS (e.g. token
tuples) as path components merges children with the same text, as the spec asks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

Prefix = tuple[Hashable, ...]


def uniform_values(rewards: Sequence[float], paths: Sequence[Sequence[Hashable]],
                   known: Sequence[bool] | None = None) -> dict[Prefix, float | None]:
    """V_u of every node of one prompt's tree, keyed by its path prefix (``()`` = the prompt).

    Args:
        rewards: One reward per trajectory (leaf).
        paths: Per trajectory, its segments root first (prompt excluded); node = prefix.
        known: Per trajectory, whether its reward is known (default: all).

    Returns:
        Prefix -> V_u, or None when no known leaf lies below.
    """
    if len(rewards) != len(paths) or (known is not None and len(known) != len(paths)):
        raise ValueError(f"invalid tree: {len(rewards)} rewards, {len(paths)} paths"
                         + ("" if known is None else f", {len(known)} known flags"))
    children: dict[Prefix, set[Prefix]] = defaultdict(set)
    ends: dict[Prefix, list[float]] = defaultdict(list)
    nodes: set[Prefix] = {()}
    for i, path in enumerate(paths):
        prefix: Prefix = ()
        for step in path:
            child = (*prefix, step)
            children[prefix].add(child)
            nodes.add(child)
            prefix = child
        if known is None or known[i]:
            ends[prefix].append(float(rewards[i]))
    values: dict[Prefix, float | None] = {}
    for node in sorted(nodes, key=len, reverse=True):  # deepest first
        # Trajectories ending at the same node took the same action: one child, their mean.
        stops = ends.get(node, [])
        parts = [values[c] for c in children.get(node, ())] + ([sum(stops) / len(stops)] if stops else [])
        parts = [p for p in parts if p is not None]
        values[node] = sum(parts) / len(parts) if parts else None
    return values


def segment_q_targets(rewards: Sequence[float], paths: Sequence[Sequence[Hashable]],
                      known: Sequence[bool] | None = None, *, centre: bool = True) -> list[list[float | None]]:
    """Per trajectory, per segment k: Q_u(s_{k-1}, c_k) = V_u(c_k), mean-centred by the mean
    known reward of the prompt when ``centre`` (spec 06 §6); None where unknown."""
    values = uniform_values(rewards, paths, known)
    kept = [float(r) for i, r in enumerate(rewards) if known is None or known[i]]
    offset = sum(kept) / len(kept) if (centre and kept) else 0.0
    out = []
    for path in paths:
        row: list[float | None] = []
        for k in range(1, len(path) + 1):
            v = values[tuple(path[:k])]
            row.append(None if v is None else v - offset)
        out.append(row)
    return out
