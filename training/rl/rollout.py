"""Rollouts: the policy's sampled, verified responses to training prompts.

Two samplers, both against the vLLM-served policy with token-id prompts (the chat template of
the question, as ponder prompts it) and both verified by the task's verifier after sampling:

- :func:`sample_independent`: ``n`` responses per prompt in one request (GRPO / ROVER);
- :func:`sample_tree`: TreePO's segment tree (:mod:`search.algorithms.treepo`); each
  trajectory keeps its segment path (for tree advantages and the tabular tree Q) and the
  token count of each segment.

A round's rollouts are saved as JSONL before the update (``save_rollouts``), so a killed
round resumes without sampling again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from search.protocols import Problem, Tokenizer, VerdictStatus
from verifiers.tasks import TaskSet

Sampler = Callable[[Path, Sequence[Problem], int], Awaitable[list["Rollout"]]]
"""``(policy checkpoint, prompts, round) -> rollouts``: serves the checkpoint and samples it."""


@dataclasses.dataclass(frozen=True)
class Rollout:
    """One verified response.

    Attributes:
        problem_id: The prompt's problem (responses of one problem form its group).
        prompt_ids: The prompt's token ids (chat template applied).
        response_ids: The sampled tokens, EOS included when the policy stopped.
        text: The response text.
        reward: The verifier's reward: 1.0 correct, else 0.0.
        finish_reason: Why sampling stopped (``eos``, ``length``, TreePO's reasons, ...).
        known: The reward is a real verdict (False when the verifier timed out).
        path: TreePO segment node ids, root first (tree sampler only).
        segment_lengths: Tokens of each segment of ``path`` (tree sampler only).
    """

    problem_id: str
    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    text: str
    reward: float
    finish_reason: str
    known: bool = True
    path: tuple[int, ...] | None = None
    segment_lengths: tuple[int, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Rollout:
        tuples = {k: tuple(v) for k, v in row.items() if isinstance(v, list)}
        return cls(**{**row, **tuples})


def groups(rollouts: Sequence[Rollout]) -> dict[str, list[int]]:
    """Problem id -> indices of its rollouts, in first-seen order."""
    out: dict[str, list[int]] = {}
    for i, r in enumerate(rollouts):
        out.setdefault(r.problem_id, []).append(i)
    return out


async def _reward(tasks: TaskSet, problem_id: str, text: str) -> tuple[float, bool]:
    verdict = await tasks.averify(problem_id, text)
    return (1.0 if verdict.correct else 0.0), verdict.status is not VerdictStatus.TIMEOUT


async def sample_independent(
    client: Any, tokenizer: Tokenizer, problems: Sequence[Problem], tasks: TaskSet, *, n: int, max_tokens: int,
    temperature: float, top_p: float = 1.0, system_prompt: str | None = None, seed: int | None = None,
) -> list[Rollout]:
    """``n`` responses per problem from ``client`` (a :class:`models.client.VLLMClient`), one
    request per problem, all in flight at once; verified."""

    async def one(index: int, problem: Problem) -> list[Rollout]:
        prompt = tokenizer.chat_prompt(problem.question, system_prompt)
        completion = await client.complete(prompt, n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                           logprobs=None, seed=None if seed is None else seed + index)
        out = []
        for choice in completion.choices:
            reward, known = await _reward(tasks, problem.id, choice.text)
            out.append(Rollout(problem.id, tuple(prompt), tuple(choice.token_ids), choice.text, reward,
                               choice.finish_reason, known and choice.finish_reason != "error"))
        return out

    found = await asyncio.gather(*(one(i, p) for i, p in enumerate(problems)))
    return [r for group in found for r in group]


async def sample_tree(
    make_context: Callable[[Problem, int], Any], problems: Sequence[Problem], tasks: TaskSet, config: Any,
    *, max_concurrent_problems: int = 16,
) -> list[Rollout]:
    """TreePO trajectories of every problem (``config``: a ``TreePOConfig``), verified.

    Args:
        make_context: ``(problem, index) -> SearchContext`` in solve mode (no oracle).
        config: The TreePO sampler's config.
        max_concurrent_problems: Trees grown at once (their segments share the server).
    """
    from search.algorithms import run_search
    from search.algorithms.treepo import trajectories

    gate = asyncio.Semaphore(max_concurrent_problems)

    async def one(index: int, problem: Problem) -> list[Rollout]:
        async with gate:
            ctx = make_context(problem, index)
            result = await run_search(ctx, config)
        out = []
        for t in trajectories(result):
            reward, known = await _reward(tasks, problem.id, t.text)
            lengths = tuple(len(result.tree.nodes[i].token_ids) for i in t.path)
            out.append(Rollout(problem.id, tuple(ctx.root_prefix), tuple(t.token_ids), t.text, reward,
                               t.finish_reason, known, tuple(t.path), lengths))
        return out

    found = await asyncio.gather(*(one(i, p) for i, p in enumerate(problems)))
    return [r for group in found for r in group]


def save_rollouts(path: Path, rollouts: Sequence[Rollout]) -> None:
    """Writes rollouts as JSONL, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r.to_json()) + "\n" for r in rollouts), encoding="utf-8")
    os.replace(tmp, path)


def load_rollouts(path: Path) -> list[Rollout]:
    return [Rollout.from_json(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]
