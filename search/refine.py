"""Pure pieces of self-refine searches (MC-NEST, MCTSr; spec 01): the follow-up turns of a
node's conversation, the self-evaluation score and its penalty, and Q from reward samples.

A node of these searches is a whole answer. Its conversation is ``prompt_ids + token_ids``
(``search.tree.Node``); critique, rewrite and self-evaluation are each one more user turn of
it, built as token ids (``ChatTurns.chat_follow_up``), so everything before the new turn is
a prefix the server has cached.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from search.protocols import ChatTurns

SCORE_MIN, SCORE_MAX = -100, 100
"""The self-evaluation scale of both codebases (spec 01 §3)."""

CRITIQUE_REQUEST = (
    "Review the answer above as a strict examiner. Point out every mistake, gap or unjustified "
    "step, and say what has to be fixed. Do not write a new solution."
)
REWRITE_REQUEST = (
    "Now write an improved, complete solution that fixes the problems pointed out in your review. "
    "Do not mention the review and do not restate the problem; reason step by step and state the "
    "final answer at the end."
)
EVALUATE_REQUEST = (
    "Grade the answer above very strictly, as an integer from -100 (completely wrong) to 100 "
    "(completely correct). Never give more than 95. Reply with the score only."
)
SCORE_PREFIX = "Score:"
"""Start of the self-evaluation reply, so that a small model answers with a number."""

DUMMY_ANSWERS = (
    "I don't know.",
    "I can't solve this problem.",
    "I am not sure how to answer this.",
    "I don't know the answer to this question.",
    "Sorry, I cannot work this out.",
    "I have no idea.",
)
"""Refusals used as dummy roots (MC-NEST: the first; MCTSr: one picked at random, §2)."""

PenaltyRule = Literal["subtract", "reset"]
_INT = re.compile(r"[-+]?\d+")


def parse_score(text: str) -> int | None:
    """The first integer in a self-evaluation reply, or None when there is none or it lies
    outside [-100, 100] (a misread scale is a parse failure, not a clamp; spec 01 §3)."""
    m = _INT.search(text)
    if m is None:
        return None
    value = int(m.group(0))
    return value if SCORE_MIN <= value <= SCORE_MAX else None


def penalise(score: float, rule: PenaltyRule, limit: float = 95.0, amount: float = 5.0, reset_to: float = 50.0) -> float:
    """Full-score suppression (spec 01 §3).

    Args:
        score: A parsed self-evaluation score in [-100, 100].
        rule: ``subtract`` (MC-NEST code: ``score > limit`` -> ``score - amount``) or ``reset``
            (MCTSr code: ``score >= limit`` -> ``reset_to``).
        limit: The threshold (95 in both codebases).
        amount: MC-NEST's ``excess_reward_penalty`` (5).
        reset_to: MCTSr's replacement score (50).
    """
    if rule == "subtract":
        return score - amount if score > limit else score
    return reset_to if score >= limit else score


def q_value(samples: Sequence[float]) -> float:
    """``Q = (min(R) + mean(R)) / 2`` over a node's reward samples (spec 01 §3; both
    codebases and the MCTSr paper); 0.0 with no sample."""
    if not samples:
        return 0.0
    return 0.5 * (min(samples) + sum(samples) / len(samples))


def strip_eos(token_ids: Sequence[int], eos_token_id: int | None) -> list[int]:
    """A reply's token ids without a trailing end-of-sequence token: the follow-up turn's own
    template tokens close the reply (``chat_follow_up``), so an EOS kept would be doubled."""
    ids = list(token_ids)
    if ids and eos_token_id is not None and ids[-1] == eos_token_id:
        ids.pop()
    return ids


class Turns:
    """Follow-up turns as token ids, built once per request text (they never change)."""

    def __init__(self, chat: ChatTurns) -> None:
        self.chat = chat
        self.eos_token_id: int | None = getattr(chat, "eos_token_id", None)
        self._cache: dict[str, list[int]] = {}

    def follow_up(self, user: str) -> list[int]:
        if user not in self._cache:
            self._cache[user] = list(self.chat.chat_follow_up(user))
        return self._cache[user]

    def encode(self, text: str) -> list[int]:
        return list(self.chat.encode(text))

    def extend(self, conversation: Sequence[int], reply: Sequence[int], user: str, reply_prefix: str = "") -> list[int]:
        """``conversation`` + ``reply`` (the assistant's turn) + a new ``user`` turn, ready for
        the next reply (which starts with ``reply_prefix``)."""
        out = [*conversation, *strip_eos(reply, self.eos_token_id), *self.follow_up(user)]
        if reply_prefix:
            out.extend(self.encode(reply_prefix))
        return out
