"""Scripted fakes of the search protocols: a char-level tokenizer, a policy scripted by
path, a reward model with known step scores, and a context builder."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from search.context import Budget, SamplingDefaults, SearchContext
from search.protocols import Generation, ModelServerError, Problem, Sampling, StepProposal, StepScores, Usage
from search.steps import StepFormat

OFFSET = 10
BOS, SEP = 1, 2


def encode(text: str) -> list[int]:
    """Char-level fake tokenizer: one token per character."""
    return [ord(c) + OFFSET for c in text]


def decode(ids: Sequence[int]) -> str:
    return "".join(chr(i - OFFSET) for i in ids)


def chat_prompt(question: str) -> list[int]:
    """The fake chat template: BOS + question + SEP."""
    return [BOS, *encode(question), SEP]


@dataclasses.dataclass(frozen=True)
class Cand:
    """A scripted candidate step: text, mean token logprob, finish reason."""

    text: str
    logprob: float = -0.1
    finish: str = "stop"


Script = Callable[[tuple[str, ...]], Sequence[Cand]]


def answer_of(text: str) -> str | None:
    """Fake extract_fn: the text after the last 'ANSWER:' up to whitespace."""
    found = re.findall(r"ANSWER:(\S+)", text)
    return found[-1] if found else None


class ScriptedPolicy:
    """A policy whose candidates depend only on the path of step texts so far.

    Sample i of the j-th request for a prefix is candidate ``(j * n + i) % len(cands)``;
    at temperature 0 every sample is candidate 0. Records every request.
    """

    def __init__(
        self,
        script: Script | dict[tuple[str, ...], Sequence[Cand]],
        root_prefix: Sequence[int] | None,
        *,
        fail_on: Callable[[tuple[str, ...]], bool] = lambda steps: False,
        fault: Exception | None = None,
        latency: float = 0.0,
    ) -> None:
        self.script = script if callable(script) else script.__getitem__
        self.root_prefix = None if root_prefix is None else list(root_prefix)
        self.fail_on = fail_on
        self.fault = fault
        """Raised where ``fail_on`` holds; default a node-level (non-retryable) server error."""
        self.latency = latency
        self.requests: list[tuple[list[int], Sampling]] = []
        self._seen: dict[tuple[int, ...], int] = defaultdict(int)
        self.in_flight = 0
        self.peak_in_flight = 0

    def steps_of(self, prefix: Sequence[int]) -> tuple[str, ...]:
        if self.root_prefix is None:  # shared by many problems: the prompt ends at SEP
            start = list(prefix).index(SEP) + 1
        else:
            assert list(prefix[: len(self.root_prefix)]) == self.root_prefix, "prefix does not start with the prompt"
            start = len(self.root_prefix)
        return tuple(re.findall(r".*?\n\n", decode(prefix[start:]), flags=re.S))

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        self.requests.append((list(prefix), sampling))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        steps = self.steps_of(prefix)
        if self.fail_on(steps):
            raise self.fault or ModelServerError("fake", "scripted failure", retryable=False)
        cands = list(self.script(steps))
        j = self._seen[tuple(prefix)]
        self._seen[tuple(prefix)] += 1
        picks = [cands[0]] * sampling.n if sampling.temperature == 0 else [
            cands[(j * sampling.n + i) % len(cands)] for i in range(sampling.n)
        ]
        if not sampling.stop:  # a rollout: continue each pick greedily to EOS in one completion
            picks = [self._complete(steps, c) for c in picks]
        picks = [c if len(c.text) <= sampling.max_tokens else Cand(c.text[: sampling.max_tokens], c.logprob, "length")
                 for c in picks]
        proposals = tuple(
            StepProposal(c.text, tuple(encode(c.text)), (c.logprob,) * len(c.text), c.finish,
                         "\n\n" if c.finish == "stop" else None, text_offsets=tuple(range(len(c.text))))
            for c in picks
        )
        generated = sum(len(p.token_ids) for p in proposals)
        return Generation(proposals, Usage(prompt_tokens=len(prefix), generated_tokens=generated, calls=1))


    def _complete(self, steps: tuple[str, ...], first: Cand) -> Cand:
        text, current = first.text, first
        while current.finish != "eos" and len(steps) < 12:
            steps = (*steps, current.text)
            try:
                current = list(self.script(steps))[0]
            except KeyError:  # unscripted: the completion runs out of tokens
                return Cand(text, first.logprob, "length")
            text += current.text
        return Cand(text, first.logprob, current.finish)


class ScriptedRewardModel:
    """Scores each step by its text (``scores`` dict, else ``default``); can fail on demand."""

    def __init__(self, scores: dict[str, float] | Callable[[str], float] | None = None, default: float = 0.5, fail: bool = False) -> None:
        table = scores or {}
        self.score_of = scores if callable(scores) else (lambda t: table.get(t, default))
        self.fail = fail
        self.calls: list[list[list[str]]] = []
        self.firsts: list[list[int]] = []
        """Per call, the index of the first step asked for in each path."""

    async def score(self, problem: Problem, paths: Sequence[Sequence[str]],
                    first: Sequence[int] | None = None) -> StepScores:
        self.calls.append([list(p) for p in paths])
        starts = list(first) if first is not None else [0] * len(paths)
        self.firsts.append(starts)
        await asyncio.sleep(0)
        if self.fail:
            raise ModelServerError("fake-prm", "scripted failure", retryable=True)
        scores = tuple(tuple(self.score_of(t) for t in p[k:]) for p, k in zip(paths, starts, strict=True))
        return StepScores(scores, Usage(reward_tokens=sum(len(t) for p in paths for t in p), reward_calls=1))


def make_ctx(
    script: Script | dict,
    *,
    question: str = "What is 2+2?",
    problem_id: str = "p0",
    reward_model: ScriptedRewardModel | None = None,
    oracle=None,
    budget: Budget | None = None,
    steps: StepFormat | None = None,
    temperature: float = 0.7,
    seed: int | None = None,
    policy_kwargs: dict | None = None,
    policy=None,
) -> SearchContext:
    """A context for one problem over ``policy`` (default: a ``ScriptedPolicy`` of ``script``)."""
    root = chat_prompt(question)
    policy = policy or ScriptedPolicy(script, root, **(policy_kwargs or {}))
    return SearchContext(
        policy=policy,
        root_prefix=root,
        problem=Problem(id=problem_id, question=question),
        steps=steps or StepFormat(max_depth=6),
        extract_fn=answer_of,
        reward_model=reward_model,
        oracle=oracle,
        budget=budget or Budget(),
        sampling=SamplingDefaults(temperature=temperature, seed=seed),
    )


# --- Conversations (self-refine searches: MC-NEST / MCTSr) ---------------------------------

EOT = 3
"""Fake end-of-turn token: closes an assistant reply (the fake tokenizer's EOS)."""


class FakeChat:
    """Fake ``ChatTurns``: a user turn is ``EOT + text + SEP`` after an assistant reply (the
    prompt itself is ``BOS + question + SEP``, as ``chat_prompt``)."""

    eos_token_id = EOT

    def encode(self, text: str) -> list[int]:
        return encode(text)

    def chat_follow_up(self, user: str) -> list[int]:
        return [EOT, *encode(user), SEP]


def conversation(ids: Sequence[int]) -> list[tuple[str, str]]:
    """(role, text) turns of a fake prompt; the last assistant turn may be a started reply."""
    turns: list[tuple[str, str]] = []
    role, buf = "user", []
    for t in ids:
        if t == BOS:
            continue
        if t in (SEP, EOT):
            assert (role == "user") == (t == SEP), f"token {t} inside a {role} turn (a doubled EOT?)"
            turns.append((role, decode(buf)))
            role, buf = ("assistant" if t == SEP else "user"), []
            continue
        buf.append(t)
    turns.append((role, decode(buf)))
    return turns


ReplyFn = Callable[[list[tuple[str, str]], int], str]
"""(conversation turns, how many times this exact prompt was asked before) -> reply text."""


class ChatPolicy:
    """A policy that answers conversations: ``reply_fn`` gets the decoded turns. Replies end
    with EOT (finish ``eos``), like vLLM's token ids, unless cut at ``stop`` or ``max_tokens``."""

    def __init__(self, reply_fn: ReplyFn) -> None:
        self.reply_fn = reply_fn
        self.requests: list[tuple[list[int], Sampling]] = []
        self._seen: dict[tuple[int, ...], int] = defaultdict(int)
        self.in_flight = self.peak_in_flight = 0

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        self.requests.append((list(prefix), sampling))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        count = self._seen[tuple(prefix)]
        self._seen[tuple(prefix)] += 1
        proposals = []
        for i in range(sampling.n):
            text, finish = self.reply_fn(conversation(prefix), count * sampling.n + i), "eos"
            for s in sampling.stop:
                if s in text:
                    text, finish = text[: text.index(s) + len(s)], "stop"
            ids = encode(text)
            if len(ids) > sampling.max_tokens:
                text, ids, finish = text[: sampling.max_tokens], ids[: sampling.max_tokens], "length"
            elif finish == "eos":
                ids = [*ids, EOT]
            proposals.append(StepProposal(text, tuple(ids), (), finish))
        generated = sum(len(p.token_ids) for p in proposals)
        return Generation(tuple(proposals), Usage(prompt_tokens=len(prefix), generated_tokens=generated, calls=1))


def make_chat_ctx(reply_fn: ReplyFn, *, question: str = "What is 2+2?", budget: Budget | None = None,
                  seed: int | None = None, problem_id: str = "p0", policy: ChatPolicy | None = None) -> SearchContext:
    """A context whose policy is a ``ChatPolicy`` (of ``reply_fn`` unless given) and whose
    ``chat`` is a ``FakeChat``."""
    return SearchContext(
        policy=policy or ChatPolicy(reply_fn), root_prefix=chat_prompt(question),
        problem=Problem(id=problem_id, question=question), steps=StepFormat(max_depth=6),
        extract_fn=answer_of, budget=budget or Budget(), sampling=SamplingDefaults(seed=seed), chat=FakeChat(),
    )
