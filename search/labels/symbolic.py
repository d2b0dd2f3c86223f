"""Step labels from a symbolic step checker: cheap, no rollouts, no gold answer needed.

The checker (a :class:`~search.protocols.StepChecker` the engine injects: sympy in verifier
workers, ``verifiers.step_reward.SymbolicChecker``) reads the claims each step states and
decides them in the context of the question and the earlier steps. Every node of the tree
gets a label where the checker has something to say:

- a step with a false claim: ``label`` False, ``value`` 0.0; with ``carry_errors`` (default)
  every step below it too (the path is wrong from there on: the Math-Shepherd / OmegaPRM
  convention that steps after the first error are negative);
- a step whose claims are all true (and no false step above it): ``label`` True, ``value`` 1.0;
- a step with nothing checkable (and no false step above it): no label, unless
  ``label_unchecked`` (then ``label`` None, ``value`` None: the step is recorded, the
  exporter leaves it unlabelled).

A true claim says the step's arithmetic holds, not that the step leads to the answer:
these labels are about local correctness, and mix with Monte-Carlo labels (exported side by
side as ``prm_symbolic`` and ``prm_math_shepherd``) rather than replace them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from search.labels.inputs import LabelInputs
from search.labels.records import StepLabel
from search.labels.rest import node_label
from search.protocols import ConfigError, StepCheck

CONVENTION = "symbolic: a false claim -> 0 (and every later step, with carry_errors); only true claims -> 1; " \
             "nothing checkable -> no label"


class SymbolicLabelConfig(BaseModel):
    """Labels from the symbolic step checker (no rollouts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: Literal["symbolic"] = Field("symbolic", description="Discriminator.")
    carry_errors: bool = Field(True, description="Steps below a step with a false claim are labelled false too.")
    label_unchecked: bool = Field(False, description="Also record steps with nothing checkable (label and value None).")


async def symbolic_labels(inputs: LabelInputs, config: SymbolicLabelConfig) -> list[StepLabel]:
    """One label per tree node the checker decides (see the module docstring); node-id order.

    Each root-to-leaf path is checked once (the checker memoises claims, so shared prefixes
    cost nothing twice); a node's status depends only on its own path.

    Raises:
        ConfigError: No step checker was given to the labelling (``label_problem(checker=)``).
    """
    if inputs.checker is None:
        raise ConfigError("labels.generator", config.generator,
                          "needs a step checker; the engine provides one (ponder label / run in label mode)")
    tree = inputs.ctx.tree
    statuses: dict[int, tuple[StepCheck, bool]] = {}
    for leaf in tree.leaves():
        if leaf == 0:
            continue
        ids = tree.content_path(leaf)
        checks = await inputs.checker.check(inputs.ctx.problem, tree.path_texts(leaf))
        wrong = False
        for node_id, check in zip(ids, checks, strict=True):
            wrong = (wrong and config.carry_errors) or check.status == "checked_false"
            statuses.setdefault(node_id, (check, wrong))
    labels = []
    for node_id in sorted(statuses):
        check, wrong = statuses[node_id]
        node = tree.nodes[node_id]
        if node.error is not None:
            continue
        if wrong:
            label, value = False, 0.0
        elif check.status == "checked_true":
            label, value = True, 1.0
        elif config.label_unchecked:
            label, value = None, None
        else:
            continue
        labels.append(node_label(
            inputs, node_id, config.generator, "symbolic", value=value, label=label, convention=CONVENTION,
            extra={"status": check.status, "after_false_step": wrong and check.status != "checked_false",
                   "claims": [{"text": c.text, "status": c.status, "detail": c.detail} for c in check.claims]},
        ))
    return labels

