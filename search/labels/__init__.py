"""Label generators: process-reward training data from finished search trees (label mode only).

Each generator is a config (discriminated on ``generator``) and an async function of a
finished search (``LabelInputs``: the tree, the oracle's verdicts on its end leaves, and
shared prefix-cached rollouts for those that sample). ``label_problem`` runs a list of them
on one problem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from search.context import SearchContext
from search.labels.inputs import LabelInputs, verify_end_leaves
from search.labels.math_shepherd import MathShepherdConfig, math_shepherd_labels
from search.labels.omega_prm import OmegaPrmConfig, omega_prm_labels
from search.labels.records import StepLabel
from search.labels.rest import RestPrmConfig, RestValueConfig, rest_prm_labels, rest_value_labels
from search.labels.rollouts import LabelStats, Rollouts
from search.labels.symbolic import SymbolicLabelConfig, symbolic_labels
from search.labels.uniform_q import AlphaMathConfig, RoverConfig, alphamath_labels, rover_labels
from search.protocols import StepChecker, Usage

LabelConfig = Annotated[
    RestValueConfig | RestPrmConfig | MathShepherdConfig | OmegaPrmConfig | RoverConfig | AlphaMathConfig
    | SymbolicLabelConfig,
    Field(discriminator="generator"),
]


@dataclasses.dataclass
class LabelOutcome:
    """One problem's labels: every generator's, what each did, and the rollouts' cost."""

    labels: list[StepLabel]
    stats: dict[str, dict[str, Any]]
    rollout_usage: Usage
    verdicts: dict[int, str]


async def run_generator(inputs: LabelInputs, config: LabelConfig, stats: LabelStats) -> list[StepLabel]:
    """Runs one generator on one finished search."""
    match config:
        case RestValueConfig():
            return await rest_value_labels(inputs, config)
        case RestPrmConfig():
            return await rest_prm_labels(inputs, config)
        case MathShepherdConfig():
            return await math_shepherd_labels(inputs, config, stats=stats)
        case OmegaPrmConfig():
            return await omega_prm_labels(inputs, config, stats=stats)
        case RoverConfig():
            return await rover_labels(inputs, config)
        case AlphaMathConfig():
            return await alphamath_labels(inputs, config)
        case SymbolicLabelConfig():
            return await symbolic_labels(inputs, config)
    raise TypeError(f"not a label config: {config!r}")


async def label_problem(ctx: SearchContext, configs: Sequence[LabelConfig], *, model: str,
                        checker: StepChecker | None = None) -> LabelOutcome:
    """Verifies the end leaves of ``ctx.tree`` and runs every generator on it, in order.

    Generators share one prefix-cached ``Rollouts``, so a prefix sampled by one is reused by
    the next; its completions get the largest ``max_rollout_tokens`` the configs set (None:
    what the remaining depth allows). ``checker`` is the symbolic step checker the
    ``symbolic`` generator needs. An ``EngineFault`` propagates (the problem stays unfinished).
    """
    verdicts = await verify_end_leaves(ctx)
    limits = [m for c in configs if (m := getattr(c, "max_rollout_tokens", None)) is not None]
    inputs = LabelInputs(ctx=ctx, model=model, verdicts=verdicts,
                         rollouts=Rollouts(ctx, max_tokens=max(limits) if limits else None), checker=checker)
    labels: list[StepLabel] = []
    stats: dict[str, dict[str, Any]] = {}
    for config in configs:
        s = LabelStats()
        found = await run_generator(inputs, config, s)
        labels.extend(found)
        stats[config.generator] = {"labels": len(found), **dataclasses.asdict(s)}
    assert inputs.rollouts is not None
    return LabelOutcome(labels, stats, inputs.rollouts.usage, {i: v.status.value for i, v in verdicts.items()})


__all__ = [
    "AlphaMathConfig",
    "LabelConfig",
    "LabelInputs",
    "LabelOutcome",
    "MathShepherdConfig",
    "OmegaPrmConfig",
    "RestPrmConfig",
    "RestValueConfig",
    "RoverConfig",
    "StepLabel",
    "SymbolicLabelConfig",
    "label_problem",
    "run_generator",
    "verify_end_leaves",
]
