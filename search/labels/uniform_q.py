"""Q targets read off a finished tree: ROVER's uniform-policy Q (spec 06 §6) and AlphaMath's
MCTS Q along solution paths (spec 05 §6). No rollouts: the oracle's verdicts on the end
leaves (``LabelInputs.verdicts``) are the rewards; ``timeout`` verdicts are unknown.

ROVER conventions (spec 06 §6 is an engineering extrapolation; these choices are ponder's):

- Duplicate step texts merge: two siblings with the same text reach the same state (the
  state is the prefix text), so the tree is read as a trie of path texts: the copies'
  subtrees are united (recursively, so their children merge too) and the state's value is
  the mean over the distinct candidates found below ANY copy. This is neither a max nor a
  mean over the copies: each distinct action counts once, as the spec asks, and every copy
  gets the same target, so identical (prefix, step) pairs never carry contradictory labels.
  A merged state with a checked end leaf among its copies takes that leaf's reward (copies
  of an end leaf share the path text, so the oracle's verdicts agree; their mean is used).
- Unknown, not 0: an unexpanded non-end leaf, an errored node, a timed-out leaf and any
  subtree without a checked end leaf have value None. Such a candidate is left out of its
  parent's mean (like an action never sampled: "unexpanded actions are simply missing"),
  so V(s) is the value of the uniform policy over the candidates whose subtrees were
  checked; a state is unknown only when none of its candidates is known. The corollary
  Q > 0 <=> a correct leaf below still holds, so ``label = Q > 0`` is exact for the tree.
- ``value`` is Q in [0, 1]. With ``mean_center`` the advantage Q - b, b = the mean reward
  of the problem's checked end leaves (centring rewards before a mean backup = centring
  after it), may leave [0, 1], so it goes to ``extra["advantage"]`` and ``value`` stays Q.

AlphaMath: ponder's values live in [0, 1], AlphaMath's (tanh head) in [-1, 1]; the map is
q01 = (q_pm1 + 1) / 2, so the terminal reward +1 / -1 becomes 1 / 0 and ``extra["target_pm1"]``
keeps the [-1, 1] target 2 * value - 1 for a tanh value head.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from search.labels.inputs import LabelInputs
from search.labels.records import StepLabel
from search.labels.rest import (
    MAX_VERDICTS,
    checked_leaves,
    leaf_statuses,
    leaves_below,
    node_label,
)
from search.tree import Tree


class RoverConfig(BaseModel):
    """ROVER-style Q of the uniform policy over the sampled candidates (spec 06 §6)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: Literal["rover"] = Field("rover", description="Discriminator.")
    mean_center: bool = Field(
        False,
        description="Also record the advantage Q - (mean reward of the problem's checked end leaves) "
        "in extra['advantage'] (spec 06 §6 mean-centring); value stays Q in [0, 1].",
    )


class AlphaMathConfig(BaseModel):
    """AlphaMath value targets: MCTS Q along each root-to-end-leaf path (spec 05 §6)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: Literal["alphamath"] = Field("alphamath", description="Discriminator.")

    @property
    def needs_backed_up_values(self) -> bool:
        """Its targets are the tree's backed-up Q (visited nodes): a search without the MCTS
        loop's backups (beam, best-first, sampling) leaves every intermediate target empty."""
        return True


@dataclasses.dataclass
class MergedTree:
    """The tree read as a trie of path texts (duplicate sibling step texts merged).

    Attributes:
        state: Per node id, its state: the lowest id among the nodes with the same path of
            step texts. The root is state 0.
        copies: Per state, the node ids merged into it.
        children: Per state, its distinct child states (over all its copies).
    """

    state: list[int]
    copies: dict[int, list[int]]
    children: dict[int, set[int]]


def merge_duplicates(tree: Tree) -> MergedTree:
    """Merges sibling steps with identical texts, recursively (their subtrees unite)."""
    state = [0] * len(tree)
    first: dict[tuple[int, str], int] = {}
    copies: dict[int, list[int]] = defaultdict(list, {0: [0]})
    children: dict[int, set[int]] = defaultdict(set)
    for node in tree.nodes[1:]:  # a parent's id is lower than its children's
        assert node.parent is not None, "only the root has no parent"
        parent = state[node.parent]
        state[node.id] = first.setdefault((parent, node.text), node.id)
        copies[state[node.id]].append(node.id)
        children[parent].add(state[node.id])
    return MergedTree(state, copies, children)


def uniform_q(merged: MergedTree, correct: Mapping[int, bool]) -> dict[int, float | None]:
    """Q of the uniform policy over each state's distinct known candidates (spec 06 §6).

    A state with a checked end leaf among its copies has Q = 1 if correct else 0 (the mean
    over such copies); any other state has the mean of its distinct children's known Q
    (r = 0 on non-terminal steps), or None when none is known.

    Args:
        merged: ``merge_duplicates`` of the tree.
        correct: Checked end leaf -> verified correct.

    Returns:
        Per state (root included), its Q in [0, 1] or None.
    """
    q: dict[int, float | None] = {}
    for s in sorted(merged.copies, reverse=True):  # a child state's id exceeds its parent's
        rewards = [1.0 if correct[i] else 0.0 for i in merged.copies[s] if i in correct]
        if rewards:
            q[s] = sum(rewards) / len(rewards)
            continue
        known = [v for c in merged.children[s] if (v := q[c]) is not None]
        q[s] = sum(known) / len(known) if known else None
    return q


async def rover_labels(inputs: LabelInputs, config: RoverConfig) -> list[StepLabel]:
    """One label per step node (mode ``uniform_q``): value Q(s, c) = V(c) of its merged state
    or None when unknown, label Q > 0 when known.

    ``verdicts``: the checked end leaves below any copy of the state (up to ``MAX_VERDICTS``,
    nearest first). ``extra``: ``state`` (merged state id), ``copies`` (nodes merged into
    it), ``candidates`` (distinct known children averaged; 0 for an end leaf), and with
    ``mean_center`` ``baseline`` and ``advantage``.

    Returns:
        Labels in node-id order (the root excluded).
    """
    tree = inputs.ctx.tree
    correct = checked_leaves(inputs.verdicts)
    merged = merge_duplicates(tree)
    q = uniform_q(merged, correct)
    below = leaves_below(tree, correct)
    baseline = sum(correct.values()) / len(correct) if correct else None
    labels = []
    for node in tree.nodes[1:]:
        s = merged.state[node.id]
        value = q[s]
        copies = merged.copies[s]
        leaves = sorted({i for c in copies for i in below.get(c, [])}, key=lambda i: (tree.nodes[i].depth, i))
        is_leaf = any(c in correct for c in copies)
        extra: dict[str, object] = {
            "state": s,
            "copies": len(copies),
            "candidates": 0 if is_leaf else sum(q[c] is not None for c in merged.children[s]),
        }
        if config.mean_center and value is not None and baseline is not None:
            extra.update(baseline=baseline, advantage=value - baseline)
        labels.append(
            node_label(
                inputs, node.id, config.generator, "uniform_q",
                value=value,
                label=None if value is None else value > 0,
                verdicts=leaf_statuses(inputs, leaves[:MAX_VERDICTS]),
                extra=extra,
            )
        )
    return labels


async def alphamath_labels(inputs: LabelInputs, config: AlphaMathConfig) -> list[StepLabel]:
    """Per checked root-to-end-leaf path (both correct and incorrect, spec 05 §6): each
    intermediate step carries its node's MCTS Q (``node.value``, the backed-up mean W / N,
    as the tree stores it; None when the node was never visited) and the last step the
    terminal reward, 1 correct / 0 incorrect (AlphaMath's +1 / -1; mode ``mcts_q``).

    ``label``: True on every step of a correct path, False on an incorrect path's last step,
    None on its intermediate steps (another branch may still succeed). ``verdicts``: the
    path's leaf. ``extra``: ``leaf_id`` (groups a path's labels), ``visits``, ``source``
    (``mcts_q`` or ``terminal_reward``), ``target_pm1`` (2 * value - 1).

    Returns:
        Labels path by path (end leaves in id order), root to leaf.
    """
    tree = inputs.ctx.tree
    labels = []
    for leaf, ok in sorted(checked_leaves(inputs.verdicts).items()):
        path = tree.path(leaf)[1:]
        for node_id in path:
            node = tree.nodes[node_id]
            last = node_id == leaf
            value = (1.0 if ok else 0.0) if last else (node.value if node.visits else None)
            labels.append(
                node_label(
                    inputs, node_id, config.generator, "mcts_q",
                    value=value,
                    label=ok if last or ok else None,
                    verdicts=leaf_statuses(inputs, [leaf]),
                    convention="AlphaMath's [-1, 1] targets mapped to [0, 1] by (q + 1) / 2",
                    extra={
                        "leaf_id": leaf,
                        "visits": node.visits,
                        "source": "terminal_reward" if last else "mcts_q",
                        "target_pm1": None if value is None else 2.0 * value - 1.0,
                    },
                )
            )
    return labels
