"""ReST-MCTS* process-reward targets inferred from a finished tree (spec 02 §1, §6).

No rollouts: the oracle's verdicts on the tree's end leaves are all the evidence.

- Reasoning distance (§1), in the code's convention ``min_steps_to_correct = m_k + 1``: a
  correct end leaf has 1, its parent 2, and so on, each ancestor the minimum over its
  children plus one (§6 steps 2-3). An incorrect end leaf, and every node between it and
  its nearest ancestor with a known distance, inherits that ancestor's distance (§6 step 4).
  The root counts as a node (v_0 = 0), so once any leaf is correct every checked end leaf
  has a known ancestor; what stays unknown is a branch with no checked end leaf at all
  (unexpanded, errored or timed-out paths).
- Quality value (§1): from the root (v_0 = 0) down,
  ``w_k = (1 - v_{k-1}) / (m_k + 1) * (+1 if he else -1)`` and ``v_k = max(v_{k-1} + w_k, 0)``,
  which is the code's ``V = max(0, (1 - parent.V) * r / min_steps_to_correct + parent.V)``.
  A correct end leaf gets exactly 1.
- ``he`` (§1 "r_{s_k}"): 1 on a path from the root to a correct end leaf, else 0.

Nothing is produced unless at least one end leaf is correct (§6 step 5; the reference code
gates its PRM variant the same way). A verdict of ``timeout`` means the oracle could not
check the leaf: such a leaf is left out (unknown), never counted as incorrect;
``unparseable`` (no answer found) counts as incorrect.

The helpers ``checked_leaves``, ``leaves_below`` and ``node_label`` are shared with the
other tree-reading generators (``search.labels.uniform_q``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from search.labels.inputs import LabelInputs
from search.labels.records import Generator, StepLabel
from search.protocols import Verdict, VerdictStatus
from search.tree import Tree

MAX_VERDICTS = 8
"""At most this many leaf verdicts are recorded on one label (nearest leaves first)."""


class RestValueConfig(BaseModel):
    """ReST-MCTS* value targets: the inferred quality value v_k of every node with a known
    reasoning distance (spec 02 §6, ``sample_value='full'``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: Literal["rest_value"] = Field("rest_value", description="Discriminator.")


class RestPrmConfig(BaseModel):
    """ReST-MCTS* PRM variant (spec 02 §6, ``USE_PRM``): binary ``he`` labels on every node of
    a path to a checked end leaf."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: Literal["rest_prm"] = Field("rest_prm", description="Discriminator.")


def checked_leaves(verdicts: Mapping[int, Verdict]) -> dict[int, bool]:
    """End leaf -> verified correct, for the leaves the oracle could check.

    ``timeout`` verdicts are dropped (unknown, not wrong); ``unparseable`` counts as incorrect.
    """
    return {i: v.correct for i, v in verdicts.items() if v.status is not VerdictStatus.TIMEOUT}


def leaves_below(tree: Tree, leaves: Iterable[int], cap: int = MAX_VERDICTS) -> dict[int, list[int]]:
    """For every node above (or equal to) one of ``leaves``, up to ``cap`` of those leaves,
    nearest first (shallowest leaf, then lowest id)."""
    out: dict[int, list[int]] = {}
    for leaf in sorted(leaves, key=lambda i: (tree.nodes[i].depth, i)):
        current: int | None = leaf
        while current is not None:
            below = out.setdefault(current, [])
            if len(below) < cap:
                below.append(leaf)
            current = tree.nodes[current].parent
    return out


def node_label(inputs: LabelInputs, node_id: int, generator: Generator, mode: str, **fields: Any) -> StepLabel:
    """A ``StepLabel`` for tree node ``node_id`` with its provenance filled in (problem,
    prefix texts, step text, depth, step tokens, model); ``fields`` sets the rest."""
    tree = inputs.ctx.tree
    node = tree.nodes[node_id]
    texts = tree.path_texts(node_id)
    return StepLabel(
        problem_id=inputs.ctx.problem.id,
        question=inputs.ctx.problem.question,
        generator=generator,
        mode=mode,
        node_id=node_id,
        prefix=texts[:-1],
        step=node.text,
        step_tokens=len(node.token_ids),
        depth=node.depth,
        model=inputs.model,
        **fields,
    )


def reasoning_distances(tree: Tree, correct: Mapping[int, bool]) -> dict[int, int]:
    """Minimum steps to a correct answer, ``min_steps_to_correct = m_k + 1`` (spec 02 §1, §6).

    Args:
        tree: The finished search tree.
        correct: End leaf id -> verified correct (leaves absent here are not evidence).

    Returns:
        Node id -> distance >= 1 for every node with a known distance (root included); nodes
        with an unknown distance (the code's 1024) are absent. Empty when no leaf is correct.
    """
    dist: dict[int, int] = {}
    for leaf, ok in correct.items():
        if not ok:
            continue
        current: int | None = leaf
        steps = 1
        while current is not None and dist.get(current, steps + 1) > steps:
            dist[current] = steps  # min over children + 1, built leaf by leaf
            current = tree.nodes[current].parent
            steps += 1
    if not dist:
        return dist
    for leaf, ok in correct.items():
        chain: list[int] = []
        current = leaf
        while current is not None and current not in dist:
            chain.append(current)
            current = tree.nodes[current].parent
        if ok or current is None:
            continue
        for node_id in chain:  # the incorrect leaf and the nodes up to the branching ancestor
            dist[node_id] = dist[current]
    return dist


def on_correct_route(tree: Tree, correct: Mapping[int, bool]) -> set[int]:
    """Nodes with ``he = 1``: every correct end leaf and all its ancestors (root included)."""
    route: set[int] = set()
    for leaf, ok in correct.items():
        current: int | None = leaf if ok else None
        while current is not None and current not in route:
            route.add(current)
            current = tree.nodes[current].parent
    return route


def quality_values(tree: Tree, distances: Mapping[int, int], he: set[int]) -> dict[int, float]:
    """Quality values v_k in [0, 1] by spec 02 §1's recurrence, from the root (v_0 = 0) down.

    ``w_k = (1 - v_{k-1}) / (m_k + 1) * r`` with ``m_k + 1 = distances[k]`` and r = +1 when
    ``k`` is in ``he`` else -1; ``v_k = max(v_{k-1} + w_k, 0)``.

    Args:
        tree: The finished search tree.
        distances: ``reasoning_distances`` (``m_k + 1`` per node).
        he: ``on_correct_route``.

    Returns:
        Node id -> v_k for the root and every node whose whole path has known distances.
    """
    values: dict[int, float] = {}
    for node in tree.nodes:  # ids are creation order: a parent comes before its children
        if node.id not in distances:
            continue
        if node.parent is None:
            values[node.id] = 0.0  # v_0
            continue
        if node.parent not in values:
            continue
        v_prev = values[node.parent]
        m_k = distances[node.id] - 1
        r = 1.0 if node.id in he else -1.0
        if m_k == 0 and r > 0:
            values[node.id] = 1.0  # v + (1 - v) is 1 exactly; say so rather than trust rounding
            continue
        w_k = (1.0 - v_prev) / (m_k + 1) * r
        values[node.id] = max(v_prev + w_k, 0.0)
    return values


def leaf_statuses(inputs: LabelInputs, leaves: Iterable[int]) -> list[str]:
    """The oracle's status of each of ``leaves`` (``StepLabel.verdicts``)."""
    return [inputs.verdicts[i].status.value for i in leaves]


async def rest_value_labels(inputs: LabelInputs, config: RestValueConfig) -> list[StepLabel]:
    """One label per node with a known reasoning distance: value v_k, label ``he``
    (spec 02 §6, mode ``inferred``).

    ``verdicts`` holds the leaves that decided the node (up to ``MAX_VERDICTS``, nearest
    first): on the correct route the correct leaves below it (the first one sets the
    distance), elsewhere the incorrect leaves below it. ``extra``: ``m_k``,
    ``min_steps_to_correct`` (= m_k + 1), ``he`` (0/1), ``leaf_ids``.

    Returns:
        Labels in node-id order; empty when no end leaf is correct.
    """
    tree = inputs.ctx.tree
    correct = checked_leaves(inputs.verdicts)
    distances = reasoning_distances(tree, correct)
    if not distances:
        return []
    he = on_correct_route(tree, correct)
    values = quality_values(tree, distances, he)
    good = leaves_below(tree, [i for i, ok in correct.items() if ok])
    bad = leaves_below(tree, [i for i, ok in correct.items() if not ok])
    labels = []
    for node_id in sorted(values):
        if node_id == 0:
            continue
        on_route = node_id in he
        deciding = (good if on_route else bad).get(node_id, [])
        labels.append(
            node_label(
                inputs, node_id, config.generator, "inferred",
                value=values[node_id],
                label=on_route,
                verdicts=leaf_statuses(inputs, deciding),
                convention="min_steps_to_correct = m_k + 1; incorrect branches inherit the branching ancestor's",
                extra={"m_k": distances[node_id] - 1, "min_steps_to_correct": distances[node_id],
                       "he": int(on_route), "leaf_ids": deciding},
            )
        )
    return labels


async def rest_prm_labels(inputs: LabelInputs, config: RestPrmConfig) -> list[StepLabel]:
    """Binary step labels of the PRM variant (spec 02 §6, ``USE_PRM``): every node on a path
    to a checked end leaf gets ``he`` (1 when a correct leaf is below it, i.e. the max over
    its on-route children), value ``float(he)``; mode ``inferred``.

    ``verdicts``/``extra["leaf_ids"]``: the correct leaves below a node labelled 1, the
    incorrect ones below a node labelled 0 (up to ``MAX_VERDICTS``, nearest first).

    Returns:
        Labels in node-id order; empty when no end leaf is correct.
    """
    tree = inputs.ctx.tree
    correct = checked_leaves(inputs.verdicts)
    if not any(correct.values()):
        return []
    he = on_correct_route(tree, correct)
    good = leaves_below(tree, [i for i, ok in correct.items() if ok])
    bad = leaves_below(tree, [i for i, ok in correct.items() if not ok])
    labels = []
    for node_id in sorted(set(good) | set(bad)):
        if node_id == 0:
            continue
        on_route = node_id in he
        deciding = (good if on_route else bad)[node_id]
        labels.append(
            node_label(
                inputs, node_id, config.generator, "inferred",
                value=float(on_route),
                label=on_route,
                verdicts=leaf_statuses(inputs, deciding),
                extra={"he": int(on_route), "leaf_ids": deciding},
            )
        )
    return labels
