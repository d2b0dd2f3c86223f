"""A scripted engine for ponder/ tests: no server, deterministic, records every prompt."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from ponder.engine import Engine
from search.protocols import EngineFault, Generation, Sampling, StepProposal, Usage
from search.scheduler import BoundedPolicy


class CharTokenizer:
    """One token per character (code point)."""

    eos_token_id = 0

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(chr(t) for t in token_ids if t)

    def chat_prompt(self, user: str, system: str | None = None) -> list[int]:
        return self.encode(f"<sys>{system or ''}<user>{user}<assistant>")


class ScriptedPolicy:
    """Answers '<a> + <b>' questions with one step ending in EOS; wrong when asked to be."""

    def __init__(self, delay: float = 0.0, answer: str | None = None, gone_after: int | None = None) -> None:
        self.delay = delay
        self.answer = answer
        self.gone_after = gone_after
        """After this many requests the engine is gone for good (an ``EngineFault``)."""
        self.prompts: list[list[int]] = []

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        self.prompts.append(list(prefix))
        await asyncio.sleep(self.delay)
        if self.gone_after is not None and len(self.prompts) > self.gone_after:
            raise EngineFault("http://fake:1", "connection refused; restart limit reached")
        text = f"The answer is {self.answer or '42'}."
        ids = tuple(ord(c) for c in text)
        prop = StepProposal(text=text, token_ids=ids, logprobs=tuple(-0.1 for _ in ids), finish_reason="eos")
        return Generation(
            proposals=tuple(prop for _ in range(sampling.n)),
            usage=Usage(prompt_tokens=len(prefix), generated_tokens=len(ids) * sampling.n, calls=1),
        )


def fake_open_engine(policy: ScriptedPolicy):
    @contextlib.asynccontextmanager
    async def open_engine(model, reward=None, on_event=None, **options):  # on_progress, warm: no server here
        yield Engine(client=None, tokenizer=CharTokenizer(), policy=BoundedPolicy(policy, 8),
                     reward_model=None, system_prompt=model.system_prompt)

    return open_engine
