"""Pieces the algorithm files share: the config base, whole sampled chains, and how a beam
outcome becomes a result."""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel, ConfigDict

from search.aggregate import best_node, vote_path
from search.beam import BeamOutcome
from search.context import SearchContext
from search.evaluators import PrmAggregation, ValueFn, ValueSource, make_value_fn
from search.trace import SearchResult

AnswerBy = Literal["first", "best", "vote", "majority"]
ScoreSource = Literal["auto", "reward_model", "prior"]


@dataclasses.dataclass(frozen=True)
class Need:
    """Something an algorithm's settings need from the run that hosts them.

    Attributes:
        what: ``reward_model`` (the run's ``reward:`` block) or ``oracle`` (the gold-answer
            verifier: label mode only).
        field: The config field whose value asks for it (``algorithm`` when the algorithm
            always does).
        instead: A setting of this config that needs nothing (for the error's fix), e.g.
            ``value: prior``.
    """

    what: Literal["reward_model", "oracle"]
    field: str
    instead: str


class ConfigBase(BaseModel):
    """Base of every algorithm config: frozen, unknown fields rejected.

    ``needs()`` declares what the settings need from the run (a reward model, the oracle), so
    a run config that cannot supply it is refused when it is loaded, not when the first
    problem fails (``ponder.requirements``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def needs(self) -> tuple[Need, ...]:
        """What these settings need from the run; none by default."""
        return ()

    @property
    def needs_reward_model(self) -> bool:
        """The search scores steps with a reward model (the run must configure one)."""
        return any(n.what == "reward_model" for n in self.needs())

    @property
    def needs_oracle(self) -> bool:
        """The search reads gold answers (rollouts, terminal checks): label mode only."""
        return any(n.what == "oracle" for n in self.needs())

    @property
    def backs_up_values(self) -> bool:
        """Its nodes carry backed-up values and visit counts (the MCTS loop's); label
        generators that read MCTS Q need such a tree."""
        return False


ADAPTIVE_PARALLEL_DESCRIPTION = (
    "Run more simulations at once than num_parallel, up to max_parallel, while the engine is under-filled "
    "(few live trees: the server's sequences in flight below model.target_in_flight). Virtual loss changes which "
    "leaves are selected, so results differ from a fixed num_parallel: off by default; the trace records the "
    "setting and the parallelism each tree used (extra.parallel).")
MAX_PARALLEL_DESCRIPTION = (
    "Bound on simulations in flight per tree with adaptive_parallel (>= num_parallel; capped at the "
    "simulation count). 8: beyond a few times the branching, parallel simulations mostly wait on nodes "
    "being expanded or select by virtual loss alone.")


def check_parallel(num_parallel: int, max_parallel: int, total: int, total_field: str) -> None:
    """Cross-field rule of the MCTS loop's parallelism: the floor within the simulation
    count, the bound at or above the floor."""
    if num_parallel > total:
        raise ValueError(f"num_parallel={num_parallel} exceeds {total_field}={total}")
    if max_parallel < num_parallel:
        raise ValueError(f"max_parallel={max_parallel} is below num_parallel={num_parallel}: set max_parallel "
                         f">= num_parallel (it bounds adaptive_parallel; num_parallel is its floor)")


def score_need(score: ScoreSource) -> tuple[Need, ...]:
    """What a beam-family ``score`` setting needs: ``reward_model`` needs a reward model."""
    if score == "reward_model":
        return (Need("reward_model", "score", "score: prior or auto (the reward model when one is configured, "
                     "else the prior)"),)
    return ()


def value_need(value: ValueSource) -> tuple[Need, ...]:
    """What a ``value`` (leaf value source) setting needs: ``reward_model`` a reward model,
    ``rollout`` the oracle (Monte-Carlo rollouts checked against the gold answer)."""
    match value:
        case "reward_model":
            return (Need("reward_model", "value", "value: prior (exp mean token logprob, no model)"),)
        case "rollout":
            return (Need("oracle", "value", "value: prior or reward_model (with a reward: block)"),)
    return ()


def score_fn_for(ctx: SearchContext, source: ScoreSource, aggregation: PrmAggregation) -> ValueFn:
    """The candidate scorer: the reward model (``auto`` when one is configured) or the
    path prior exp(mean token logprob)."""
    use_model = source == "reward_model" or (source == "auto" and ctx.reward_model is not None)
    return make_value_fn(ctx, "reward_model" if use_model else "prior", aggregation=aggregation)


async def sample_chains(ctx: SearchContext, num_samples: int, temperature: float | None) -> BeamOutcome:
    """``num_samples`` whole chains from the root in one request (n = N), each cut into steps
    afterwards; nothing is pruned. Answered terminal chains are finished, errored ones
    dropped, and chains cut at the token limit stay active (unfinished)."""
    out = BeamOutcome()
    leaves = await ctx.sample_solutions(0, num_samples, temperature=temperature)
    with ctx.bookkeeping():
        for leaf in leaves:
            node = ctx.tree.nodes[leaf]
            if node.error is not None or (node.terminal and node.answer is None):
                out.dropped.append(leaf)
            else:
                (out.finished if node.terminal else out.active).append(leaf)
    return out


def finish_beam(ctx: SearchContext, algorithm: str, outcome: BeamOutcome, answer_by: AnswerBy, **extra: object) -> SearchResult:
    """The result of a beam-family search.

    Args:
        ctx: The search context.
        algorithm: Name recorded in the result.
        outcome: What the beam search produced.
        answer_by: ``first`` finished path, ``best`` score, score-weighted ``vote``
            (PRM-weighted vote) or unweighted ``majority`` vote over finished paths.
            With none finished, the best-scored unfinished beam is returned.
        **extra: Extra fields for ``SearchResult.extra``.
    """
    finished, scores = outcome.finished, outcome.scores
    with ctx.bookkeeping():
        match answer_by:
            case "first":
                node = finished[0] if finished else None
            case "best":
                node = best_node(finished, lambda i: scores.get(i, 0.0))
            case "vote":
                node = vote_path(ctx.tree, finished, [scores.get(i, 0.0) for i in finished])
            case "majority":
                node = vote_path(ctx.tree, finished, [1.0] * len(finished))
        if node is None:
            node = best_node(outcome.active, lambda i: scores.get(i, 0.0))
    return ctx.result(algorithm, node, finished=finished, **extra)
