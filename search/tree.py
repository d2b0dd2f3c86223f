"""The search tree: a flat arena of nodes (mctx-style).

Nodes live in one list; a node's id is its index, which is also its creation order; the
root is node 0 and holds no step (the problem prompt is ``Tree.root_prefix``). Parent and
children are ids, so the tree is deterministic, cheap to copy and trivial to serialise.

A node holds either a **step** appended to its parent's path (step searches: its text
continues the parent's token path) or a **whole answer** produced from a conversation
(self-refine searches, MC-NEST / MCTSr: ``prompt_ids`` is set, and the node's content path
starts at the node itself, whatever its ancestors wrote). ``content_path`` says which nodes'
tokens and texts make up a node's solution; every ``path_*`` helper follows it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from search.protocols import FinishReason, StepProposal

if TYPE_CHECKING:
    import networkx


@dataclasses.dataclass
class Node:
    """One reasoning step, or one whole answer (``prompt_ids`` set), or the root (neither).

    Attributes:
        id: Index in ``Tree.nodes`` (creation order); 0 is the root.
        parent: Parent id, None for the root.
        depth: Number of steps from the root (root 0).
        text: The step text, including its delimiter when the step ended at one.
        token_ids: The step's token ids exactly as sampled (never re-tokenised).
        finish_reason: Why the step ended; None for the root.
        logprob_sum: Sum of the step's token log-probabilities (<= 0).
        logprob_mean: Mean token log-probability of the step (<= 0; 0 when unknown).
        scores: Per-step scores in [0, 1] by source, e.g. ``"prm"``, ``"self_eval"``,
            ``"verifier"``, ``"rollout"``.
        visits: Visit count N (backups through this node).
        value_sum: Sum of backed-up values W; ``value`` = W / N.
        first_value: The first value estimate of the node (AlphaMath's ``value``), in [0, 1].
        terminal: True when the path ends here (EOS or maximum depth).
        answer: The final answer extracted from the path text (terminal nodes only).
        error: Why expanding or scoring this node failed; an errored node is not expanded.
        end: The search closed this path here without EOS (ReST-MCTS*'s end gate in data
            mode: the value reached ``end_gate``); it is never expanded and counts as an
            end leaf, with ``answer`` extracted from its path text.
        children: Child ids in creation order.
        prompt_ids: For a whole-answer node: the conversation (token ids, chat template
            applied) whose reply ``token_ids`` is; its path tokens are ``prompt_ids +
            token_ids`` instead of the parent's path + ``token_ids``. None for a step.
        info: Algorithm-specific records (JSON-serialisable), kept in the trace, e.g.
            MC-NEST's critique, reward samples, Q history and selection weights.
        virtual_loss: Pending virtual visits of in-flight simulations (transient).
    """

    id: int
    parent: int | None
    depth: int
    text: str = ""
    token_ids: tuple[int, ...] = ()
    finish_reason: FinishReason | None = None
    logprob_sum: float = 0.0
    logprob_mean: float = 0.0
    scores: dict[str, float] = dataclasses.field(default_factory=dict)
    visits: int = 0
    value_sum: float = 0.0
    first_value: float | None = None
    terminal: bool = False
    answer: str | None = None
    error: str | None = None
    end: bool = False
    children: list[int] = dataclasses.field(default_factory=list)
    prompt_ids: tuple[int, ...] | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    virtual_loss: int = 0

    @property
    def is_answer(self) -> bool:
        """Whether the node holds a whole answer (its content does not continue its parent's)."""
        return self.prompt_ids is not None

    @property
    def value(self) -> float:
        """Mean backed-up value Q = W / N, or 0.0 when unvisited."""
        return self.value_sum / self.visits if self.visits else 0.0

    @property
    def prior(self) -> float:
        """AlphaMath's prior P = exp(mean token logprob) in (0, 1], not renormalised."""
        return math.exp(self.logprob_mean)


class Tree:
    """A flat arena of ``Node``s rooted at node 0.

    Args:
        root_prefix: Token ids of the prompt (chat template applied to the problem).
        nodes: Existing nodes (for deserialisation); a fresh root is created when None.
    """

    def __init__(self, root_prefix: Sequence[int] = (), nodes: list[Node] | None = None) -> None:
        self.root_prefix: tuple[int, ...] = tuple(root_prefix)
        self.nodes: list[Node] = nodes if nodes is not None else [Node(id=0, parent=None, depth=0)]

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def add_child(
        self, parent_id: int, proposal: StepProposal, *, terminal: bool, prompt_ids: Sequence[int] | None = None
    ) -> Node:
        """Appends a child of ``parent_id`` made from a sampled step and returns it; with
        ``prompt_ids``, a whole-answer child: the reply ``proposal`` to that conversation."""
        parent = self.nodes[parent_id]
        node = Node(
            id=len(self.nodes),
            parent=parent_id,
            depth=parent.depth + 1,
            text=proposal.text,
            token_ids=tuple(proposal.token_ids),
            finish_reason=proposal.finish_reason,
            logprob_sum=float(sum(proposal.logprobs)),
            logprob_mean=proposal.mean_logprob,
            terminal=terminal,
            prompt_ids=None if prompt_ids is None else tuple(prompt_ids),
        )
        self.nodes.append(node)
        parent.children.append(node.id)
        return node

    def path(self, node_id: int) -> list[int]:
        """Node ids from the root to ``node_id``, both included."""
        ids = []
        current: int | None = node_id
        while current is not None:
            ids.append(current)
            current = self.nodes[current].parent
        return ids[::-1]

    def content_path(self, node_id: int) -> list[int]:
        """The nodes whose texts make up ``node_id``'s solution, first to last: the path below
        the root, or from the nearest whole-answer node on it (itself included) down."""
        ids = self.path(node_id)[1:]
        for k in range(len(ids) - 1, -1, -1):
            if self.nodes[ids[k]].is_answer:
                return ids[k:]
        return ids

    def path_token_ids(self, node_id: int) -> list[int]:
        """The prompt to continue ``node_id``: root prefix (or the conversation of the answer
        the content path starts at) + every step's token ids."""
        ids = self.content_path(node_id)
        first = self.nodes[ids[0]] if ids else None
        out = list(first.prompt_ids) if first is not None and first.prompt_ids is not None else list(self.root_prefix)
        for i in ids:
            out.extend(self.nodes[i].token_ids)
        return out

    def path_texts(self, node_id: int) -> list[str]:
        """Texts of ``content_path(node_id)``: the steps below the root (root excluded), or the
        whole answer and any steps after it."""
        return [self.nodes[i].text for i in self.content_path(node_id)]

    def path_text(self, node_id: int) -> str:
        """The solution text so far: step texts joined as generated (they carry delimiters)."""
        return "".join(self.path_texts(node_id))

    def path_mean_logprob(self, node_id: int) -> float:
        """Mean token log-probability over every token of the content path (0.0 for the root)."""
        steps = [self.nodes[i] for i in self.content_path(node_id)]
        num_tokens = sum(len(n.token_ids) for n in steps)
        return sum(n.logprob_sum for n in steps) / num_tokens if num_tokens else 0.0

    def leaves(self) -> list[int]:
        """Ids of nodes without children."""
        return [n.id for n in self.nodes if not n.children]

    def terminals(self) -> list[int]:
        """Ids of terminal nodes."""
        return [n.id for n in self.nodes if n.terminal]

    def subtree(self, node_id: int) -> list[int]:
        """Ids of ``node_id`` and all its descendants, in depth-first pre-order."""
        out, stack = [], [node_id]
        while stack:
            current = stack.pop()
            out.append(current)
            stack.extend(reversed(self.nodes[current].children))
        return out

    def to_networkx(self) -> networkx.DiGraph:
        """A ``networkx.DiGraph`` with one vertex per node (attributes = node fields)."""
        import networkx

        graph = networkx.DiGraph()
        for node in self.nodes:
            attrs: dict[str, Any] = dataclasses.asdict(node)
            attrs.pop("children")
            attrs["value"] = node.value
            graph.add_node(node.id, **attrs)
            if node.parent is not None:
                graph.add_edge(node.parent, node.id)
        return graph
