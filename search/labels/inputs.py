"""What every label generator receives: the finished search and the oracle's verdicts.

Label generators run in LABEL MODE ONLY: ``ctx.oracle`` (the gold-answer verifier) must be
set. Generators that need rollouts get a shared ``Rollouts`` (prefix-cached, concurrent
through the same bounded policy as the search; ``LabelInputs.shared_rollouts``).
"""

from __future__ import annotations

import asyncio
import dataclasses

from search.aggregate import end_leaves
from search.context import SearchContext
from search.labels.rollouts import Rollouts
from search.protocols import ConfigError, StepChecker, Verdict


async def verify_end_leaves(ctx: SearchContext) -> dict[int, Verdict]:
    """The oracle's verdict on every end leaf's path text (concurrently); each reward is
    also stored on its node as ``scores["verifier"]``.

    Raises:
        ConfigError: Not in label mode (no oracle).
    """
    if ctx.oracle is None:
        raise ConfigError("oracle", None, "labels need the gold-answer oracle (label mode only)")
    leaves = end_leaves(ctx.tree)
    verdicts = await asyncio.gather(*(ctx.oracle(ctx.tree.path_text(i)) for i in leaves))
    for i, v in zip(leaves, verdicts, strict=True):
        ctx.tree.nodes[i].scores["verifier"] = v.reward
    return dict(zip(leaves, verdicts, strict=True))


@dataclasses.dataclass
class LabelInputs:
    """A finished search, ready to be labelled.

    Attributes:
        ctx: The search's context: tree, problem, policy (bounded), steps, oracle.
        model: The policy (completer) model id, recorded on every label.
        verdicts: Oracle verdicts of the tree's end leaves (``verify_end_leaves``).
        rollouts: Prefix-cached Monte-Carlo rollouts, for generators that sample.
        checker: Symbolic step checker (the engine's), for the ``symbolic`` generator.
    """

    ctx: SearchContext
    model: str
    verdicts: dict[int, Verdict]
    rollouts: Rollouts | None = None
    checker: StepChecker | None = None

    def shared_rollouts(self, max_tokens: int | None) -> Rollouts:
        """The problem's shared ``Rollouts``: ``rollouts``, or a new one (with ``max_tokens``)
        stored there, so the caller can read its usage and later generators reuse its cache.
        An existing one keeps its own token limit."""
        if self.rollouts is None:
            self.rollouts = Rollouts(self.ctx, max_tokens=max_tokens)
        return self.rollouts
