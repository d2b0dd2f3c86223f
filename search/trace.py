"""What a search returns, and the versioned trace schema it is saved as.

Training reads only traces. ``SearchResult.to_trace(problem)`` exports one;
``SearchTrace.to_tree()`` rebuilds the tree. Bump ``SCHEMA_VERSION`` on any change
that old readers cannot ignore.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from search.protocols import FinishReason, Problem, Usage
from search.tree import Node, Tree

SCHEMA_VERSION = 1


class NodeRecord(BaseModel):
    """One node of a saved tree; the fields of ``search.tree.Node`` (less transient ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(description="Index in the node list (creation order); 0 is the root.")
    parent: int | None = Field(description="Parent id; None for the root.")
    depth: int = Field(description="Steps from the root (root 0).")
    text: str = Field(description="Step text, delimiter included.")
    token_ids: list[int] = Field(description="Step token ids as sampled.")
    finish_reason: FinishReason | None = Field(description="Why the step ended; None for the root.")
    logprob_sum: float = Field(description="Sum of token log-probabilities (<= 0).")
    logprob_mean: float = Field(description="Mean token log-probability (<= 0).")
    scores: dict[str, float] = Field(description="Per-step scores in [0, 1] by source (prm, self_eval, verifier, rollout).")
    visits: int = Field(description="Visit count N.")
    value_sum: float = Field(description="Sum of backed-up values W (Q = W / N).")
    first_value: float | None = Field(description="First value estimate in [0, 1].")
    terminal: bool = Field(description="Whether the path ends here.")
    answer: str | None = Field(description="Answer extracted from the path text (terminals).")
    error: str | None = Field(description="Why expanding or scoring this node failed.")
    end: bool = Field(False, description="Closed by the search's end gate (an end leaf without EOS).")
    children: list[int] = Field(description="Child ids in creation order.")
    prompt_ids: list[int] | None = Field(
        None, description="Whole-answer nodes: the conversation token ids the answer replies to; None for steps.")
    info: dict[str, Any] = Field(
        default_factory=dict, description="Algorithm-specific records (MC-NEST: critique, reward samples, Q history).")

    @classmethod
    def from_node(cls, node: Node) -> NodeRecord:
        fields = dataclasses.asdict(node)
        fields.pop("virtual_loss")
        return cls(**fields)


class SearchTrace(BaseModel):
    """A whole search of one problem: the tree, the answer, the chosen path, the cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="Trace schema version.")
    problem_id: str = Field(description="Problem id.")
    question: str = Field(description="Problem statement (never the gold answer).")
    algorithm: str = Field(description="Algorithm name (the config's discriminator).")
    config: dict[str, Any] = Field(description="The algorithm config, as validated.")
    root_prefix: list[int] = Field(description="Prompt token ids (chat template applied).")
    nodes: list[NodeRecord] = Field(description="Every node, root first, in creation order.")
    answer: str | None = Field(description="The search's final answer.")
    path: list[int] = Field(description="Node ids from the root to the chosen node.")
    usage: dict[str, int | float] = Field(description="Compute spent (see search.protocols.Usage).")
    extra: dict[str, Any] = Field(description="Algorithm-specific results and timings.")

    def to_tree(self) -> Tree:
        """Rebuilds the search tree stored in this trace."""
        nodes = [
            Node(**{**record.model_dump(), "token_ids": tuple(record.token_ids),
                    "prompt_ids": None if record.prompt_ids is None else tuple(record.prompt_ids)})
            for record in self.nodes
        ]
        return Tree(self.root_prefix, nodes)


@dataclasses.dataclass
class SearchResult:
    """The outcome of one search.

    Attributes:
        answer: Final answer string, or None when the search found none.
        path: Node ids from the root to the chosen node (empty when there is none).
        tree: The whole search tree.
        usage: Compute spent on the problem; ``wall_seconds`` is the search's elapsed time.
        algorithm: The algorithm's name.
        extra: Algorithm-specific results and timings (JSON-serialisable), including
            ``bookkeeping_seconds`` (time in search code, outside model calls) and
            ``model_wait_seconds`` (summed, possibly overlapping, model-call latency).
        config: The algorithm config as a dict (filled by ``run_search``).
    """

    answer: str | None
    path: list[int]
    tree: Tree
    usage: Usage
    algorithm: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_trace(self, problem: Problem) -> SearchTrace:
        """The trace of this result for ``problem``."""
        return SearchTrace(
            problem_id=problem.id,
            question=problem.question,
            algorithm=self.algorithm,
            config=self.config,
            root_prefix=list(self.tree.root_prefix),
            nodes=[NodeRecord.from_node(n) for n in self.tree.nodes],
            answer=self.answer,
            path=list(self.path),
            usage=self.usage.to_dict(),
            extra=self.extra,
        )
