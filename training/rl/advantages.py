"""Advantages for policy-gradient training on sampled trajectories: pure functions, no torch.

Two estimators over ONE prompt's trajectories (their number varies: everything is computed
from the actual set, spec 03 §9):

- ``group_advantages``: GRPO-style, (R_i - mean) / std over the prompt's group.
- ``tree_advantages``: TreePO's tree-based baseline (spec 03 §6,
  ``tree_reinforce_plus_plus_baseline``): for each depth d, A_d(i) = R_i - mean of the rewards
  of the trajectories sharing i's first d segments, then aggregated over d.

and the batch-level pieces: ``token_advantages`` / ``whiten`` (broadcast a trajectory's
advantage to its tokens and whiten over every valid token of the batch, REINFORCE++-baseline
style), and ``segment_values`` / ``segment_advantages`` (a node's value = mean of its
children's, bottom-up; the spec's per-segment "progress" estimator).

A trajectory's ``path`` is the tuple of its segment node ids, root first, WITHOUT the prompt
(the tree's root node): ``path[:d]`` identifies its depth-d ancestor. Node ids only need to be
unique within one prompt's tree (``search.algorithms.treepo.TreeTrajectory.path``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

Aggregation = Literal["average", "group_size"]

ROOT: None = None
"""Key of the prompt (the tree's root) in ``segment_values``."""


def _check_lengths(rewards: Sequence[float], paths: Sequence[Sequence[Hashable]]) -> None:
    if len(rewards) != len(paths):
        raise ValueError(f"invalid paths: {len(paths)} paths for {len(rewards)} rewards (one path per trajectory)")


def group_advantages(rewards: Sequence[float], *, std_normalize: bool = True, eps: float = 1e-4) -> list[float]:
    """GRPO's group-relative advantage of one prompt's trajectories.

    A_i = (R_i - mean R) / (std R + eps) with the unbiased std (as TRL's GRPOTrainer), or
    R_i - mean R when ``std_normalize`` is False (Dr. GRPO). A group of one gets 0.

    Args:
        rewards: One scalar reward per trajectory of the prompt.
        std_normalize: Divide by the group's standard deviation.
        eps: Added to the std (TRL: 1e-4).
    """
    n = len(rewards)
    if n == 0:
        return []
    mean = sum(rewards) / n
    centred = [float(r - mean) for r in rewards]
    if not std_normalize:
        return centred
    if n == 1:
        return [0.0]
    std = math.sqrt(sum(c * c for c in centred) / (n - 1))
    return [c / (std + eps) for c in centred]


def tree_advantages(
    rewards: Sequence[float],
    paths: Sequence[Sequence[Hashable]],
    *,
    aggregation: Aggregation = "average",
    skip_uniform: bool = False,
    max_subgroup_depth: int | None = None,
) -> list[float]:
    """TreePO's tree-based advantage of one prompt's trajectories (spec 03 §6).

    For trajectory i and depth d = 0 .. len(path_i): G_d(i) = the trajectories whose paths
    start with ``path_i[:d]`` (d = 0: all of the prompt's, the global group; d >= 1: the
    subtree under i's depth-d ancestor), and A_d(i) = R_i - mean_{j in G_d(i)} R_j. Depth 0 is
    always kept; d >= 1 only when |G_d(i)| > 1 and, with ``skip_uniform`` (the released code's
    ``subtree_std_ds``), when the subgroup's rewards are not all equal. Aggregation:
    ``average`` (the train default) = mean over the kept d; ``group_size`` =
    sum_d |G_d| A_d / sum_d |G_d|. No per-group std division (whiten over the batch after).

    The subgroup ids are the dapo trainer's ``prompt#seg1#seg2...`` (spec 03 §6): depth 0 is
    the whole prompt group, so it never depends on the first segment.

    Args:
        rewards: One scalar reward per trajectory (e.g. a verifier's 0/1).
        paths: ``paths[i]`` = trajectory i's segment node ids, root first (prompt excluded).
        aggregation: ``average`` or ``group_size``.
        skip_uniform: Drop subgroups (d >= 1) whose rewards are all equal.
        max_subgroup_depth: Consider only d <= this (``tree_subgroup_opt``, 14 in the
            release); None = the whole path.

    Returns:
        One advantage per trajectory, in input order.
    """
    _check_lengths(rewards, paths)
    if aggregation not in ("average", "group_size"):
        raise ValueError(f"invalid aggregation={aggregation!r}: expected 'average' or 'group_size'")
    if max_subgroup_depth is not None and max_subgroup_depth < 0:
        raise ValueError(f"invalid max_subgroup_depth={max_subgroup_depth!r}: must be >= 0")
    members: dict[tuple[Hashable, ...], list[float]] = defaultdict(list)
    for reward, path in zip(rewards, paths):
        for d in range(len(path) + 1):
            members[tuple(path[:d])].append(float(reward))
    out = []
    for reward, path in zip(rewards, paths):
        top = len(path) if max_subgroup_depth is None else min(len(path), max_subgroup_depth)
        terms: list[tuple[int, float]] = []  # (|G_d|, A_d)
        for d in range(top + 1):
            group = members[tuple(path[:d])]
            if d >= 1 and (len(group) <= 1 or (skip_uniform and min(group) == max(group))):
                continue
            terms.append((len(group), float(reward) - sum(group) / len(group)))
        if aggregation == "average":
            out.append(sum(a for _, a in terms) / len(terms))
        else:
            out.append(sum(size * a for size, a in terms) / sum(size for size, _ in terms))
    return out


def whiten(values: np.ndarray | Sequence[Sequence[float]], mask: np.ndarray | Sequence[Sequence[float]], *, eps: float = 1e-8) -> np.ndarray:
    """Whitens ``values`` over the positions where ``mask`` is set (verl's ``masked_whiten``).

    (v - mean) / sqrt(var + eps), with the mean and the unbiased variance over the masked
    positions of the whole batch; unmasked positions are 0 in the result.

    Args:
        values: A (batch, tokens) array (padded).
        mask: Same shape; nonzero = a valid response token.
    """
    v = np.asarray(values, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if v.shape != m.shape:
        raise ValueError(f"invalid mask: shape {m.shape} does not match values {v.shape}")
    count = int(m.sum())
    if count == 0:
        return np.zeros_like(v)
    mean = v[m].mean()
    var = v[m].var(ddof=1) if count > 1 else 0.0
    return np.where(m, (v - mean) / np.sqrt(var + eps), 0.0)


def token_advantages(advantages: Sequence[float], lengths: Sequence[int], *, whitened: bool = True) -> list[list[float]]:
    """Broadcasts each trajectory's advantage to its ``lengths[i]`` response tokens and (by
    default) whitens over all tokens of the batch (spec 03 §6).

    Args:
        advantages: One advantage per trajectory of the batch (all prompts together).
        lengths: Response tokens of each trajectory (>= 0).
        whitened: Apply ``whiten`` over the batch's tokens.

    Returns:
        Per trajectory, one value per response token.
    """
    if len(advantages) != len(lengths):
        raise ValueError(f"invalid lengths: {len(lengths)} lengths for {len(advantages)} advantages")
    if any(n < 0 for n in lengths):
        raise ValueError(f"invalid lengths={list(lengths)!r}: must be >= 0")
    width = max(lengths, default=0)
    grid = np.zeros((len(lengths), width))
    mask = np.arange(width)[None, :] < np.asarray(lengths, dtype=np.int64)[:, None]
    grid[:] = np.asarray(advantages, dtype=np.float64)[:, None]
    if whitened:
        grid = whiten(grid, mask)
    return [grid[i, :n].tolist() for i, n in enumerate(lengths)]


def segment_values(rewards: Sequence[float], paths: Sequence[Sequence[Hashable]]) -> dict[Hashable, float]:
    """Each node's value = the mean of its children's values, bottom-up (the released
    ``calculate_rewards_iterative``); a trajectory's last segment is worth its reward.

    A trajectory that ends at a node that also has children counts as one more child of it
    (worth its reward). The prompt's value is under ``ROOT`` (None).

    Args:
        rewards: One reward per trajectory.
        paths: Segment node ids per trajectory, root first (prompt excluded).
    """
    _check_lengths(rewards, paths)
    children: dict[Hashable, dict[Hashable, None]] = defaultdict(dict)  # ordered sets
    ends: dict[Hashable, list[float]] = defaultdict(list)
    depth: dict[Hashable, int] = {ROOT: 0}
    for reward, path in zip(rewards, paths):
        parent: Hashable = ROOT
        for d, node in enumerate(path, start=1):
            if depth.setdefault(node, d) != d:
                raise ValueError(f"invalid paths: node {node!r} appears at depths {depth[node]} and {d}")
            children[parent][node] = None
            parent = node
        ends[parent].append(float(reward))
    values: dict[Hashable, float] = {}
    for node in sorted(depth, key=lambda k: -depth[k]):  # deepest first
        parts = [values[c] for c in children.get(node, {})] + ends.get(node, [])
        values[node] = sum(parts) / len(parts)
    return values


def segment_advantages(rewards: Sequence[float], paths: Sequence[Sequence[Hashable]]) -> list[list[float]]:
    """Per-segment progress advantages: V(segment) - V(its parent), for each segment of each
    trajectory, with ``segment_values`` (spec 03 §6, the ``TREE_SEG_BASELINE`` idea).

    Returns:
        ``out[i][k]`` = advantage of trajectory i's (k+1)-th segment.
    """
    values = segment_values(rewards, paths)
    return [
        [values[node] - values[parent] for parent, node in zip((ROOT, *path), path)]
        for path in paths
    ]
