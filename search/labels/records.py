"""What a label generator produces: one ``StepLabel`` per labelled step, with provenance.

Label files are JSON lines of ``StepLabel`` (``RUN_DIR/labels/ID.jsonl``, one file per
problem, written atomically before the problem's result line). Training reads these files
and the traces, never live search objects.

A "step" is one node of the search tree, or, for OmegaPRM's binary search, the span between
two probed prefixes (possibly several delimiter steps). ``prefix`` + ``[step]`` is the
labelled partial solution; ``prefix`` holds the step texts before it, as generated.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LABEL_SCHEMA_VERSION = 1

Generator = Literal["rest_value", "rest_prm", "math_shepherd", "omega_prm", "rover", "alphamath", "symbolic"]


class StepLabel(BaseModel):
    """One labelled step of one problem."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(LABEL_SCHEMA_VERSION, description="Label schema version.")
    problem_id: str = Field(description="Problem id.")
    question: str = Field(description="Problem statement (never the gold answer).")
    generator: Generator = Field(description="Which label generator made this label.")
    mode: str = Field(description="How: inferred (from the tree), per_step, binary_search, tree, uniform_q, mcts_q.")
    node_id: int | None = Field(description="Tree node of the step's last token; None for a state inside a rollout.")
    prefix: list[str] = Field(description="Step texts before this step, as generated.")
    step: str = Field(description="The labelled step (or span) text.")
    step_tokens: int = Field(ge=0, description="Tokens in the step.")
    depth: int = Field(ge=1, description="len(prefix) + 1.")
    value: float | None = Field(description="Soft target in [0, 1] (MC success rate, inferred value, Q); None if unknown.")
    label: bool | None = Field(description="Hard target (leads to a correct answer); None if unknown.")
    rollouts: int = Field(0, ge=0, description="Completions sampled to estimate this label (0: read off the tree).")
    correct: int = Field(0, ge=0, description="How many of them the verifier accepted.")
    verdicts: list[str] = Field(default_factory=list, description="Verifier status of each rollout / leaf used.")
    model: str = Field(description="The completer (policy) model id.")
    convention: str | None = Field(None, description="A logged labelling convention, e.g. OmegaPRM's after-first-error rule.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Generator-specific fields (m_k, he, MC probes, seeds).")
