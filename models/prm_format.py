"""The generative PRM's judge format: one definition for the server-side reader and the trainer.

A generative process reward model judges step ``j`` of a solution from one prompt: the judge
``template`` filled with the question and steps ``0..j`` (one per line, stripped), wrapped in
the chat template (``chat``), followed by ``response_prefix``; the next token is the verdict,
``positive`` (default ``"+"``) or ``negative`` (``"-"``).

:class:`models.reward.GenerativePRM` builds its requests with :func:`judge_prompt_ids` and
reads the verdict's probability at the label ids of :func:`label_token_ids`;
``training.train.prm`` builds its training inputs with the same two functions (through
:class:`JudgeFormat`), so the trained model is asked exactly what it was taught. Torch-free:
it needs only a :class:`~search.protocols.Tokenizer`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from search.protocols import ConfigError, Tokenizer

DEFAULT_PRM_TEMPLATE = (
    "Here is a math problem and a partial solution. Check only the LAST step.\n\n"
    "Problem: {question}\n\n"
    "Solution so far:\n{steps}\n\n"
    "Is the last step correct? Answer with + if it is correct or - if it is wrong."
)
"""The judge prompt; ``{question}`` and ``{steps}`` (steps so far, one per line) are filled in."""

POSITIVE_LABEL = "+"
"""Text of the "correct" verdict token."""
NEGATIVE_LABEL = "-"
"""Text of the "wrong" verdict token."""


def format_steps(steps: Sequence[str]) -> str:
    """The steps so far as the judge sees them: each stripped, one per line."""
    return "\n".join(s.strip() for s in steps)


def check_template(template: str) -> None:
    """Raises :class:`ConfigError` unless ``template`` has ``{question}`` and ``{steps}``."""
    if "{steps}" not in template or "{question}" not in template:
        raise ConfigError("template", template, "must contain {question} and {steps}")


def judge_prompt_ids(tokenizer: Tokenizer, template: str, question: str, steps: Sequence[str], *,
                     response_prefix: str = "", chat: bool = True) -> list[int]:
    """Token ids of the judge prompt for the last of ``steps``.

    Args:
        tokenizer: The judge model's tokenizer.
        template: Judge prompt with ``{question}`` and ``{steps}``.
        question: The problem text.
        steps: Steps ``0..j``; the judge rates step ``j``.
        response_prefix: Text placed at the start of the judge's reply.
        chat: Wrap the filled template in the chat template (else encode it as plain text).

    Returns:
        The prompt ids; the verdict is the token that follows them.
    """
    text = template.format(question=question, steps=format_steps(steps))
    ids = tokenizer.chat_prompt(text) if chat else tokenizer.encode(text)
    if response_prefix:
        ids = ids + tokenizer.encode(response_prefix)
    return ids


def label_token_ids(tokenizer: Tokenizer, label: str, field: str = "label") -> tuple[int, ...]:
    """The token ids that count as the verdict ``label``: every single-token encoding of the
    label with and without a leading space (first: the label as given, when one token).

    Raises:
        ConfigError: Neither variant encodes to a single token (``field`` names the setting).
    """
    ids: list[int] = []
    for variant in (label, " " + label.lstrip()):
        enc = tokenizer.encode(variant)
        if len(enc) == 1 and enc[0] not in ids:
            ids.append(enc[0])
    if not ids:
        raise ConfigError(field, label, "does not encode to a single token")
    return tuple(ids)


@dataclasses.dataclass(frozen=True)
class JudgeFormat:
    """The settings that fix a generative PRM's prompt and verdict tokens.

    Attributes:
        template: Judge prompt with ``{question}`` and ``{steps}``.
        response_prefix: Text placed at the start of the judge's reply.
        chat: Wrap the template in the chat template.
        positive: Text of the "correct" verdict token.
        negative: Text of the "wrong" verdict token.
    """

    template: str = DEFAULT_PRM_TEMPLATE
    response_prefix: str = ""
    chat: bool = True
    positive: str = POSITIVE_LABEL
    negative: str = NEGATIVE_LABEL

    def __post_init__(self) -> None:
        check_template(self.template)

    def prompt_ids(self, tokenizer: Tokenizer, question: str, steps: Sequence[str]) -> list[int]:
        """Token ids of the judge prompt for the last of ``steps`` (:func:`judge_prompt_ids`)."""
        return judge_prompt_ids(tokenizer, self.template, question, steps,
                                response_prefix=self.response_prefix, chat=self.chat)

    def label_ids(self, tokenizer: Tokenizer) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(positive ids, negative ids)``: the token ids read as each verdict.

        Raises:
            ConfigError: A label is not a single token, or the two share a token.
        """
        positive = label_token_ids(tokenizer, self.positive, "positive")
        negative = label_token_ids(tokenizer, self.negative, "negative")
        if set(positive) & set(negative):
            raise ConfigError("negative", self.negative, "shares a token with the positive label")
        return positive, negative
