"""A process-reward model served by vLLM as a pooling model (``--runner pooling``).

Per-step scores are read at the step separators of one sequence (token classification),
or one classification per step prefix. Shares prompt helpers and the score cache with
:mod:`models.reward`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from models.client import VLLMClient
from models.reward import (
    _assemble,
    _ScoreCache,
    _unique_prefixes,
)
from search.protocols import ConfigError, ModelServerError, Problem, StepScores, Tokenizer, Usage, score_starts


class PoolingPRM:
    """A reward model served with ``vllm serve <model> --runner pooling``.

    Two layouts of model output are supported (``mode``):

    ``"token_classify"`` (default; e.g. Qwen2.5-Math-PRM, served with
    ``--runner pooling --pooler-config '{"task": "token_classify"}'`` if it is not the model's
    default task): one ``POST /pooling`` request with ``task="token_classify"`` per score
    call, one input per path: ``prompt ids + step_1 ids + [sep] + step_2 ids + [sep] + ...``.
    The server returns, for every input token, a list of class probabilities
    (``data[i].data: list[list[float]]``, softmax applied); the score of step ``j`` is
    ``probs[positive_index]`` at the position of the ``j``-th separator token.

    ``"classify"`` (a sequence classifier, e.g. a model served with ``--convert classify``):
    one ``POST /classify`` request whose inputs are every uncached step prefix
    ``prompt + step_1 + ... + step_j``; the server returns ``data[k].probs: list[float]``
    and the score is ``probs[positive_index]``. A single-logit classifier
    (``num_classes == 1``) is read as the probability itself.

    Args:
        client: Client of the pooling server (its ``model`` is sent with each request).
        tokenizer: The reward model's tokenizer.
        mode: ``"token_classify"`` or ``"classify"``.
        step_separator: Text of the separator token placed after each step
            (token_classify mode), e.g. ``"<extra_0>"`` for Qwen2.5-Math-PRM.
        positive_index: Class index of "correct".
        template: Prompt text before the steps, with ``{question}``.
        chat: Wrap the question in the chat template (the steps form the reply).
        step_joiner: Text between steps in classify mode.
        cache_size: Memoised step scores (0 disables).
    """

    def __init__(
        self,
        client: VLLMClient,
        tokenizer: Tokenizer,
        *,
        mode: Literal["token_classify", "classify"] = "token_classify",
        step_separator: str = "\n\n",
        positive_index: int = 1,
        template: str = "{question}",
        chat: bool = True,
        step_joiner: str = "\n\n",
        cache_size: int = 100_000,
    ) -> None:
        if mode not in ("token_classify", "classify"):
            raise ConfigError("mode", mode, "expected 'token_classify' or 'classify'")
        if positive_index < 0:
            raise ConfigError("positive_index", positive_index, "must be >= 0")
        self.client = client
        self.tokenizer = tokenizer
        self.mode = mode
        self.positive_index = positive_index
        self.template = template
        self.chat = chat
        self.step_joiner = step_joiner
        self.separator_id: int | None = None
        if mode == "token_classify":
            sep = tokenizer.encode(step_separator)
            if len(sep) != 1:
                raise ConfigError("step_separator", step_separator,
                                  f"must be one token, encodes to {sep}")
            self.separator_id = sep[0]
        self._cache = _ScoreCache(cache_size)

    def _prompt_ids(self, problem: Problem) -> list[int]:
        text = self.template.format(question=problem.question)
        return self.tokenizer.chat_prompt(text) if self.chat else self.tokenizer.encode(text)

    def token_classify_input(self, problem: Problem, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        """``(input ids, separator positions)`` for one path in token_classify mode."""
        assert self.separator_id is not None
        ids = self._prompt_ids(problem)
        positions = []
        for step in steps:
            ids += self.tokenizer.encode(step.strip())
            positions.append(len(ids))
            ids.append(self.separator_id)
        return ids, positions

    def classify_input(self, problem: Problem, steps: Sequence[str]) -> list[int]:
        """Input ids for one step prefix in classify mode."""
        return self._prompt_ids(problem) + self.tokenizer.encode(
            self.step_joiner.join(s.strip() for s in steps)
        )

    async def score(self, problem: Problem, paths: Sequence[Sequence[str]],
                    first: Sequence[int] | None = None) -> StepScores:
        started = time.perf_counter()
        usage = Usage()
        starts = score_starts(paths, first)
        if self.mode == "token_classify":
            fresh = await self._token_classify(problem, paths, starts, usage)
        else:
            fresh = await self._classify(problem, paths, starts, usage)
        for prefix, value in fresh.items():
            self._cache.put((problem.question, prefix), value)
        usage.wall_seconds = time.perf_counter() - started
        return StepScores(scores=_assemble(problem, paths, starts, self._cache, fresh), usage=usage)

    async def _token_classify(self, problem: Problem, paths: Sequence[Sequence[str]], starts: Sequence[int],
                              usage: Usage) -> dict[tuple[str, ...], float]:
        # A path needs a request if a prefix asked for is uncached; one input scores a whole path.
        todo = [p for p, k in zip(paths, starts, strict=True) if any(
            self._cache.get((problem.question, tuple(p[: j + 1]))) is None for j in range(k, len(p)))]
        if not todo:
            return {}
        inputs = [self.token_classify_input(problem, p) for p in todo]
        body, endpoint, _ = await self.client.request("POST", "/pooling", {
            "model": self.client.model,
            "input": [ids for ids, _ in inputs],
            "task": "token_classify",
        })
        rows = parse_pooling_rows(body, len(inputs), endpoint)
        fresh: dict[tuple[str, ...], float] = {}
        for path, (_, positions), row in zip(todo, inputs, rows, strict=True):
            for j, pos in enumerate(positions):
                if pos >= len(row):
                    raise ModelServerError(endpoint, f"pooling output has {len(row)} tokens, "
                                           f"expected a score at position {pos}", retryable=False)
                fresh[tuple(path[: j + 1])] = self._class_probability(row[pos], endpoint)
        usage.reward_calls += 1
        usage.reward_tokens += _prompt_tokens(body, sum(len(ids) for ids, _ in inputs))
        return fresh

    async def _classify(self, problem: Problem, paths: Sequence[Sequence[str]], starts: Sequence[int],
                        usage: Usage) -> dict[tuple[str, ...], float]:
        todo = _unique_prefixes(problem, paths, starts, self._cache)
        if not todo:
            return {}
        inputs = [self.classify_input(problem, p) for p in todo]
        body, endpoint, _ = await self.client.request("POST", "/classify", {
            "model": self.client.model, "input": inputs,
        })
        data = _sorted_data(body, len(inputs), endpoint)
        fresh = {}
        for prefix, item in zip(todo, data, strict=True):
            probs = item.get("probs")
            if not isinstance(probs, list):
                raise ModelServerError(endpoint, "classify reply without probs", retryable=False)
            fresh[prefix] = self._class_probability(probs, endpoint)
        usage.reward_calls += 1
        usage.reward_tokens += _prompt_tokens(body, sum(len(i) for i in inputs))
        return fresh

    def _class_probability(self, probs: Any, endpoint: str) -> float:
        if isinstance(probs, (int, float)):
            probs = [probs]
        if not isinstance(probs, list) or not probs:
            raise ModelServerError(endpoint, f"unexpected class scores {probs!r}", retryable=False)
        index = 0 if len(probs) == 1 else self.positive_index
        if index >= len(probs):
            raise ModelServerError(endpoint, f"positive_index {self.positive_index} out of range "
                                   f"for {len(probs)} classes", retryable=False)
        return min(1.0, max(0.0, float(probs[index])))


def _sorted_data(body: Any, expected: int, endpoint: str) -> list[dict[str, Any]]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        raise ModelServerError(endpoint, f"expected {expected} results, got "
                               f"{len(data) if isinstance(data, list) else data!r}", retryable=False)
    return sorted(data, key=lambda d: d.get("index", 0))


def parse_pooling_rows(body: Any, expected: int, endpoint: str = "") -> list[list[Any]]:
    """Per input, the per-token outputs of a ``/pooling`` ``token_classify`` reply.

    Raises:
        ModelServerError: the reply does not have ``expected`` per-token lists.
    """
    rows = []
    for item in _sorted_data(body, expected, endpoint):
        row = item.get("data")
        if not isinstance(row, list) or (row and not isinstance(row[0], (list, int, float))):
            raise ModelServerError(endpoint, "pooling reply is not per-token data (is the server's "
                                   "pooling task token_classify?)", retryable=False)
        rows.append(row)
    return rows


def _prompt_tokens(body: Any, fallback: int) -> int:
    usage = body.get("usage") if isinstance(body, dict) else None
    if isinstance(usage, dict) and usage.get("prompt_tokens"):
        return int(usage["prompt_tokens"])
    return fallback
