"""Math-Shepherd process labels: hard and soft Monte-Carlo estimation per step (spec 08 §2).

Every step on the paths from the root to the tree's end leaves is labelled once (a step
shared by several paths too). A non-final step gets N completions from its path's token ids:
soft label (SE) = MC = correct / N, hard label (HE) = 1[MC > 0]. The final step of a path
(an end leaf) is labelled by the oracle's verdict on its own path text, read off
``inputs.verdicts`` with no sampling: ``rollouts = 0``, ``correct = 0``, ``verdicts`` =
[its status], value = 1.0 or 0.0 (spec: "label by checking its own answer").
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from search.aggregate import end_leaves
from search.labels.inputs import LabelInputs
from search.labels.records import StepLabel
from search.labels.rollouts import Estimate, LabelStats, gather_all
from search.protocols import ConfigError, Verdict

log = logging.getLogger(__name__)


class MathShepherdConfig(BaseModel):
    """Math-Shepherd: N completions per step prefix; hard label MC > 0, soft label MC."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: Literal["math_shepherd"] = Field("math_shepherd", description="Discriminator.")
    num_rollouts: int = Field(8, ge=1, description="Completions N per step prefix (Math-Shepherd N = 8).")
    max_rollout_tokens: int | None = Field(
        None, ge=1, description="Token limit of one completion; None = what the remaining depth allows."
    )


async def math_shepherd_labels(
    inputs: LabelInputs, config: MathShepherdConfig, *, stats: LabelStats | None = None
) -> list[StepLabel]:
    """Labels every step of every root-to-end-leaf path of the tree (spec 08 §2).

    All estimates run concurrently. A step whose estimate failed at its node (a node-level
    failure) gets no label and is counted in ``stats.skipped``.

    Args:
        inputs: The finished search, its end leaves' verdicts and the shared rollouts
            (created from ``config.max_rollout_tokens`` when None).
        config: The generator's settings.
        stats: Filled with what was done (estimates, skipped labels), if given.

    Returns:
        One label per labelled node, in node-id order.

    Raises:
        ConfigError: Not in label mode (no oracle).
        EngineFault: The engine is gone.
    """
    ctx = inputs.ctx
    if ctx.oracle is None:
        raise ConfigError("oracle", None, "Math-Shepherd labels need the gold-answer oracle (label mode only)")
    stats = stats if stats is not None else LabelStats()
    tree = ctx.tree
    rollouts = inputs.shared_rollouts(config.max_rollout_tokens)
    leaves = end_leaves(tree)
    nodes = sorted({i for leaf in leaves for i in tree.path(leaf)[1:]})
    leaf_set = set(leaves)
    inner = [i for i in nodes if i not in leaf_set]
    missing = [i for i in leaves if i not in inputs.verdicts]
    found = await gather_all(*(ctx.oracle(tree.path_text(i)) for i in missing))
    verdicts: dict[int, Verdict] = {**inputs.verdicts, **dict(zip(missing, found, strict=True))}
    stats.estimates += len(inner)
    estimates = await gather_all(*(
        rollouts.estimate(tree.path_token_ids(i), tree.path_text(i), config.num_rollouts, depth=tree.nodes[i].depth)
        for i in inner
    ))
    by_node: dict[int, Estimate] = dict(zip(inner, estimates, strict=True))
    labels = []
    for i in nodes:
        estimate = by_node.get(i)
        if estimate is not None and (estimate.error is not None or estimate.n == 0):
            stats.skip(estimate.error or "no usable completion")
            continue
        labels.append(_label(inputs, i, estimate, verdicts.get(i)))
    if stats.skipped:
        log.warning("math_shepherd %s: %d step(s) skipped on failed rollouts", ctx.problem.id, stats.skipped)
    return labels


def _label(inputs: LabelInputs, node_id: int, estimate: Estimate | None, verdict: Verdict | None) -> StepLabel:
    """The label of one node: from its estimate (inner step) or its own verdict (end leaf)."""
    ctx, tree = inputs.ctx, inputs.ctx.tree
    node = tree.nodes[node_id]
    if estimate is not None:
        value, rollouts, correct, statuses = estimate.mc, estimate.n, estimate.correct, list(estimate.verdicts)
        extra = {"seeds": sorted({s for s in estimate.seeds if s is not None})}
    else:
        assert verdict is not None
        value, rollouts, correct, statuses = verdict.reward, 0, 0, [verdict.status.value]
        extra = {"final": True}
    return StepLabel(
        problem_id=ctx.problem.id,
        question=ctx.problem.question,
        generator="math_shepherd",
        mode="per_step",
        node_id=node_id,
        prefix=tree.path_texts(node_id)[:-1],
        step=node.text,
        step_tokens=len(node.token_ids),
        depth=node.depth,
        value=value,
        label=value > 0,
        rollouts=rollouts,
        correct=correct,
        verdicts=statuses,
        model=inputs.model,
        extra=extra,
    )
