"""Reward models behind :class:`~search.protocols.RewardModel`: scores in [0, 1] per step.

Three kinds, all served by vLLM:

- :class:`GenerativePRM` — a generative judge: for every step of a path, a prompt (question,
  steps so far, a judge suffix) is completed for one token, and the score is
  ``p(+) / (p(+) + p(-))`` read from the logprobs of the label tokens.
- :class:`PoolingPRM` — a reward model run with ``vllm serve --runner pooling``: either a
  token classifier read at step-separator tokens (``/pooling``, task ``token_classify``,
  the Qwen2.5-Math-PRM / Math-Shepherd layout) or a sequence classifier scored once per
  step prefix (``/classify``).
- :class:`SelfEvalReward` — the policy rates its own partial solution from 0 to 10
  (MCTSr / MC-NEST self-refine reward), parsed and normalised to [0, 1].

Every ``score`` call returns the compute it spent as ``Usage.reward_tokens`` (prompt +
generated tokens of the judge requests) and ``Usage.reward_calls`` (HTTP requests), plus
``wall_seconds``. The PRMs are deterministic, so they memoise step scores by
``(question, steps so far)``: re-scoring a path whose prefix was scored before costs
nothing (a search re-scores the same prefixes many times).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from models.client import VLLMClient
from models.prm_format import (
    DEFAULT_PRM_TEMPLATE,
    NEGATIVE_LABEL,
    POSITIVE_LABEL,
    JudgeFormat,
    check_template,
    judge_prompt_ids,
)
from search.protocols import (
    ConfigError,
    ModelServerError,
    Problem,
    StepScores,
    score_starts,
    Tokenizer,
    Usage,
)

NEUTRAL_SCORE = 0.5
"""Score given when a judge's answer carries no usable signal."""

DEFAULT_SELF_EVAL_TEMPLATE = (
    "Problem: {question}\n\n"
    "Partial solution:\n{steps}\n\n"
    "Rate this partial solution from 0 to 10, where 0 means certainly wrong and 10 means "
    "certainly correct and on track. Reply with the number only."
)


class _ScoreCache:
    """A bounded LRU map ``(question, steps so far) -> score``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, tuple[str, ...]], float] = OrderedDict()

    def get(self, key: tuple[str, tuple[str, ...]]) -> float | None:
        if self.size <= 0:
            return None
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: tuple[str, tuple[str, ...]], value: float) -> None:
        if self.size <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)


def _unique_prefixes(
    problem: Problem, paths: Sequence[Sequence[str]], starts: Sequence[int], cache: _ScoreCache
) -> list[tuple[str, ...]]:
    """The step prefixes of ``paths`` (from step ``starts[i]`` of path ``i`` on) that are not
    cached, each once, in first-seen order."""
    todo: dict[tuple[str, ...], None] = {}
    for path, start in zip(paths, starts, strict=True):
        for j in range(start, len(path)):
            prefix = tuple(path[: j + 1])
            if prefix not in todo and cache.get((problem.question, prefix)) is None:
                todo[prefix] = None
    return list(todo)


def _assemble(
    problem: Problem, paths: Sequence[Sequence[str]], starts: Sequence[int], cache: _ScoreCache,
    fresh: dict[tuple[str, ...], float],
) -> tuple[tuple[float, ...], ...]:
    out = []
    for path, start in zip(paths, starts, strict=True):
        row = []
        for j in range(start, len(path)):
            prefix = tuple(path[: j + 1])
            value = fresh.get(prefix)
            if value is None:
                value = cache.get((problem.question, prefix))
            row.append(NEUTRAL_SCORE if value is None else value)
        out.append(tuple(row))
    return tuple(out)


def label_probability(
    top_logprobs: dict[Any, float], positive: Sequence[Any], negative: Sequence[Any]
) -> float:
    """``p(positive) / (p(positive) + p(negative))`` from one position's logprobs.

    Each label may have several keys (e.g. token ids of ``"+"`` and ``" +"``); their
    probabilities are summed. Neither present -> :data:`NEUTRAL_SCORE`. Result in [0, 1].
    """
    pos = sum(math.exp(v) for k, v in top_logprobs.items() if k in positive and v is not None)
    neg = sum(math.exp(v) for k, v in top_logprobs.items() if k in negative and v is not None)
    if pos + neg <= 0.0:
        return NEUTRAL_SCORE
    return min(1.0, max(0.0, pos / (pos + neg)))


class _JudgedPrefixes:
    """Shared by the judges that score each step prefix with one completion request.

    Subclasses set ``template``, ``response_prefix``, ``tokenizer``, ``chat`` and ``_cache``,
    and implement ``_score_prefix``; every distinct step prefix is scored once per call.
    """

    def __init__(self, client: VLLMClient, tokenizer: Tokenizer, *, template: str,
                 response_prefix: str, chat: bool, cache_size: int) -> None:
        check_template(template)
        self.client = client
        self.tokenizer = tokenizer
        self.template = template
        self.response_prefix = response_prefix
        self.chat = chat
        self._cache = _ScoreCache(cache_size)

    def prompt(self, problem: Problem, steps: Sequence[str]) -> list[int]:
        """Token ids of the judge prompt for the last of ``steps``."""
        return judge_prompt_ids(self.tokenizer, self.template, problem.question, steps,
                                response_prefix=self.response_prefix, chat=self.chat)

    async def score(self, problem: Problem, paths: Sequence[Sequence[str]],
                    first: Sequence[int] | None = None) -> StepScores:
        started = time.perf_counter()
        usage = Usage()
        starts = score_starts(paths, first)
        todo = _unique_prefixes(problem, paths, starts, self._cache)
        values = await asyncio.gather(*(self._score_prefix(problem, p, usage) for p in todo))
        fresh = dict(zip(todo, values, strict=True))
        for prefix, value in fresh.items():
            self._cache.put((problem.question, prefix), value)
        usage.wall_seconds = time.perf_counter() - started
        return StepScores(scores=_assemble(problem, paths, starts, self._cache, fresh), usage=usage)

    async def _score_prefix(self, problem: Problem, steps: tuple[str, ...], usage: Usage) -> float:
        raise NotImplementedError


class GenerativePRM(_JudgedPrefixes):
    """A generative process reward model (a judge LM emitting ``+`` / ``-``) served by vLLM.

    For step ``j`` of a path the prompt is the chat template applied to ``template``
    (``{question}``, ``{steps}`` = steps ``0..j`` one per line), followed by
    ``response_prefix``; one token is generated at temperature 0 and the score is the
    normalised probability of the positive label. The label tokens are every single-token
    encoding of ``positive`` / ``negative`` with and without a leading space. Prompt and label
    tokens come from :mod:`models.prm_format` (:attr:`format`), the definition the PRM trainer
    (``training.train.prm``) uses too.

    With ``exact_label_logprobs`` (default) the request names the label token ids through
    vLLM's ``logprob_token_ids`` so their logprobs are returned even when outside the top
    20; if the server rejects that field the PRM falls back, once and for good, to reading
    the top-``top_logprobs`` alternatives (labels absent there count as probability 0).

    Args:
        client: Client of the server that runs the judge model.
        tokenizer: The judge model's tokenizer (chat template and label token ids).
        positive: Text of the "correct" label token.
        negative: Text of the "wrong" label token.
        template: Judge prompt with ``{question}`` and ``{steps}``.
        response_prefix: Text placed at the start of the judge's reply (after the template).
        chat: Wrap ``template`` in the chat template (else use it as plain text).
        top_logprobs: Alternatives requested per position when not exact (vLLM's max: 20).
        cache_size: Memoised step scores (0 disables).
    """

    def __init__(
        self,
        client: VLLMClient,
        tokenizer: Tokenizer,
        *,
        positive: str = POSITIVE_LABEL,
        negative: str = NEGATIVE_LABEL,
        template: str = DEFAULT_PRM_TEMPLATE,
        response_prefix: str = "",
        chat: bool = True,
        exact_label_logprobs: bool = True,
        top_logprobs: int = 20,
        cache_size: int = 100_000,
    ) -> None:
        super().__init__(client, tokenizer, template=template, response_prefix=response_prefix,
                         chat=chat, cache_size=cache_size)
        self.exact_label_logprobs = exact_label_logprobs
        self.top_logprobs = top_logprobs
        self.format = JudgeFormat(template=template, response_prefix=response_prefix, chat=chat,
                                  positive=positive, negative=negative)
        """The judge format (:mod:`models.prm_format`), shared with the PRM trainer."""
        self.positive_ids, self.negative_ids = self.format.label_ids(tokenizer)

    async def _score_prefix(self, problem: Problem, steps: tuple[str, ...], usage: Usage) -> float:
        prompt = self.prompt(problem, steps)
        labels = list(self.positive_ids + self.negative_ids)
        if self.exact_label_logprobs:
            try:
                completion = await self.client.complete(
                    prompt, max_tokens=1, temperature=0.0, logprobs=len(labels),
                    tokens_as_ids=True, extra={"logprob_token_ids": labels},
                )
            except ModelServerError as e:
                if e.retryable or "logprob_token_ids" not in e.cause:
                    raise
                self.exact_label_logprobs = False  # an older vLLM: read the top-k instead
                return await self._score_prefix(problem, steps, usage)
        else:
            completion = await self.client.complete(
                prompt, max_tokens=1, temperature=0.0, logprobs=self.top_logprobs,
                tokens_as_ids=True,
            )
        usage.reward_calls += 1
        usage.reward_tokens += completion.usage.prompt_tokens + completion.usage.generated_tokens
        choice = completion.choices[0]
        top = dict(choice.top_logprobs[0]) if choice.top_logprobs else {}
        return label_probability(top, self.positive_ids, self.negative_ids)


_RATING_PATTERNS = (
    re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?)", re.IGNORECASE),
    re.compile(r"(?:score|rating|rate|grade)\s*(?:is|of|:|=)?\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE),
    re.compile(r"(-?\d+(?:\.\d+)?)"),
)


def parse_rating(text: str, max_score: float = 10.0) -> float | None:
    """A judge's rating normalised to [0, 1], or None when the text holds no valid rating.

    Accepts ``"7"``, ``"7.5"``, ``"Score: 8"``, ``"8/10"``, ``"8 out of 10"`` (a fraction
    with another denominator is rescaled). A number outside ``[0, max_score]`` is rejected,
    not clamped: "85" from a 0-10 judge means it misread the scale.
    """
    m = _RATING_PATTERNS[0].search(text)
    if m:
        value, scale = float(m.group(1)), float(m.group(2))
        if scale > 0 and 0 <= value <= scale:
            return value / scale
        return None
    for pattern in _RATING_PATTERNS[1:]:
        m = pattern.search(text)
        if m:
            value = float(m.group(1))
            return value / max_score if 0 <= value <= max_score else None
    return None


DEFAULT_FOLLOW_UP = (
    "Rate your partial solution above from 0 to 10, where 0 means certainly wrong and 10 means "
    "certainly correct and on track. Reply with the number only."
)
"""The rating request of :class:`SelfEvalReward` in follow-up mode (a new user turn)."""


class SelfEvalReward(_JudgedPrefixes):
    """The policy rates its own partial solution (MCTSr / MC-NEST self-evaluation).

    For each step prefix, the policy model receives ``template`` (question and the steps so
    far) as a chat turn, followed by ``response_prefix``, and samples ``num_samples``
    short replies; each is parsed by :func:`parse_rating` into [0, 1] and the score is their
    mean. Replies with no valid rating are left out of the mean and counted in
    :attr:`unparseable`; if none parses the step gets :data:`NEUTRAL_SCORE` (0.5).

    Two prompt styles. Follow-up (default, when the tokenizer has ``chat_follow_up``): the
    policy's own conversation -- ``chat_prompt(question, system)`` and the steps' text --
    followed by a new user turn ``follow_up``; the conversation is what the policy already
    computed, so the server's prefix cache holds all of it. Fresh (``follow_up=None``):
    ``template`` as a new conversation (question and steps re-quoted), as MCTSr does.

    Args:
        client: Client of the policy's server.
        tokenizer: The policy's tokenizer.
        template: Judge prompt with ``{question}`` and ``{steps}``.
        response_prefix: Start of the reply, e.g. ``"Rating: "``, so that a small model
            answers with a number.
        max_score: Top of the rating scale (ratings are in ``[0, max_score]``).
        num_samples: Ratings sampled per step (``n`` of one request).
        temperature: Sampling temperature of the ratings.
        max_tokens: Tokens allowed per rating reply.
        cache_size: Memoised step scores; 0 (the default) samples afresh on every call, as
            MCTSr does when it re-evaluates a node.
        follow_up: Rating request of the follow-up style; None for the fresh style.
        system: The policy's system prompt (follow-up style), so the prefix matches its prompts.
    """

    def __init__(
        self,
        client: VLLMClient,
        tokenizer: Tokenizer,
        *,
        template: str = DEFAULT_SELF_EVAL_TEMPLATE,
        response_prefix: str = "Rating: ",
        max_score: float = 10.0,
        num_samples: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 8,
        seed: int | None = None,
        cache_size: int = 0,
        follow_up: str | None = DEFAULT_FOLLOW_UP,
        system: str | None = None,
    ) -> None:
        super().__init__(client, tokenizer, template=template, response_prefix=response_prefix,
                         chat=True, cache_size=cache_size)
        make_follow_up = getattr(tokenizer, "chat_follow_up", None)
        self._follow_up_ids = make_follow_up(follow_up) if follow_up and make_follow_up else None
        self.system = system
        if max_score <= 0:
            raise ConfigError("max_score", max_score, "must be > 0")
        if num_samples < 1:
            raise ConfigError("num_samples", num_samples, "must be >= 1")
        self.max_score = max_score
        self.num_samples = num_samples
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.unparseable = 0
        """Replies so far that held no valid rating."""
        self.rated = 0
        """Replies so far that were parsed into a rating."""

    def prompt(self, problem: Problem, steps: Sequence[str]) -> list[int]:
        if self._follow_up_ids is None:
            return super().prompt(problem, steps)
        ids = self.tokenizer.chat_prompt(problem.question, self.system) + self.tokenizer.encode("".join(steps))
        return ids + self._follow_up_ids + self.tokenizer.encode(self.response_prefix)

    async def _score_prefix(self, problem: Problem, steps: tuple[str, ...], usage: Usage) -> float:
        completion = await self.client.complete(
            self.prompt(problem, steps), n=self.num_samples, max_tokens=self.max_tokens,
            temperature=self.temperature, stop=("\n",), logprobs=None, seed=self.seed,
        )
        usage.reward_calls += 1
        usage.reward_tokens += completion.usage.prompt_tokens + completion.usage.generated_tokens
        ratings = []
        for choice in completion.choices:
            rating = parse_rating(choice.text, self.max_score)
            if rating is None:
                self.unparseable += 1
            else:
                self.rated += 1
                ratings.append(rating)
        return sum(ratings) / len(ratings) if ratings else NEUTRAL_SCORE
