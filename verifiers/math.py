"""Math answers checked with math-verify (LaTeX / expression parsing into sympy).

Two stages, as in math-verify: ``extract`` finds the final answer in the model text
(:mod:`verifiers.extract`), then the gold and the extracted answer are each parsed by
math-verify and compared by its ``verify``, inside a pool worker with a hard timeout, so
an answer such as ``9^{9^{9^9}}`` that sends sympy into a very long computation yields a
TIMEOUT verdict instead of a hang. Exact string equality after light normalisation is
accepted as CORRECT without a worker.

Safety: this module never calls ``eval``, ``sympify`` or ``parse_expr`` on model text.
math-verify parses LaTeX with its ANTLR grammar and hands sympy's ``parse_expr`` only
text matching its plain-expression regex (digits, ``.``, spaces, ``+-*/^()×÷``).
"""

from __future__ import annotations

import functools
import numbers
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from search.protocols import ConfigError, Verdict, VerdictStatus
from verifiers.base import PooledVerifier, WorkerOutcome, clean_text, guarded
from verifiers.extract import extract_answer
from verifiers.pool import WorkerPool

_SPACING_RE = re.compile(r"\\[,;:! ]|\\left|\\right|\s+")


class MathVerifierConfig(BaseModel):
    """Settings of :class:`MathVerifier`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(5.0, gt=0, le=300, description="Hard limit per check, seconds.")
    max_candidate_chars: int = Field(
        8000, ge=64, description="Characters of candidate text kept (from the end)."
    )


def normalize(answer: str) -> str:
    """Light, meaning-preserving normalisation for the exact-match fast path.

    Removes whitespace, ``$`` delimiters, LaTeX spacing and ``\\left``/``\\right``, one
    trailing full stop, and maps ``\\dfrac``/``\\tfrac`` to ``\\frac``.
    """
    text = _SPACING_RE.sub("", answer).strip("$")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return text[:-1] if text.endswith(".") else text


def gold_text(gold: Any) -> str:
    """The gold answer as text. Accepts str, bytes and real numbers (not bool).

    Raises:
        ConfigError: ``gold`` is of another type or empty.
    """
    if isinstance(gold, (bytes, bytearray)):
        gold = bytes(gold).decode("utf-8", errors="replace")
    if isinstance(gold, bool) or not isinstance(gold, (str, numbers.Real)):
        raise ConfigError("gold", gold, "a math gold answer must be a string or a number")
    text = str(gold).strip()
    if not text:
        raise ConfigError("gold", gold, "the gold answer is empty")
    return text


@functools.lru_cache(maxsize=1024)
def _parse(answer: str) -> tuple[Any, ...]:
    """math-verify's parse of a final answer (worker side); empty when nothing parses."""
    from math_verify import parse

    attempts = [answer] if "\\boxed" in answer else [f"\\boxed{{{answer}}}", f"${answer}$", answer]
    for text in attempts:
        parsed = parse(text, parsing_timeout=None)
        if parsed:
            return tuple(parsed)
    return ()


def check_math(gold: str, answer: str) -> WorkerOutcome:
    """Compares an extracted answer to the gold with math-verify (runs in a pool worker).

    Args:
        gold: gold final answer (LaTeX or plain).
        answer: the answer extracted from the candidate text.

    Returns:
        (status, detail) with status a :class:`VerdictStatus` value.
    """
    return guarded(_compare, gold, answer)


def _compare(gold: str, answer: str) -> WorkerOutcome:
    from math_verify import verify

    parsed_gold = _parse(gold)
    if not parsed_gold:
        return VerdictStatus.UNPARSEABLE.value, "math-verify could not parse the gold answer"
    parsed_answer = _parse(answer)
    if not parsed_answer:
        return VerdictStatus.UNPARSEABLE.value, "math-verify could not parse the answer"
    same = verify(list(parsed_gold), list(parsed_answer), timeout_seconds=None)
    status = VerdictStatus.CORRECT if same else VerdictStatus.INCORRECT
    return status.value, "math-verify"


class MathVerifier(PooledVerifier):
    """The :class:`search.protocols.Verifier` for math answers.

    Args:
        config: settings; defaults to :class:`MathVerifierConfig` ``()``.
        pool: worker pool for checks; None means the process-wide shared pool.
    """

    def __init__(self, config: MathVerifierConfig | None = None,
                 pool: WorkerPool | None = None) -> None:
        self.config = config or MathVerifierConfig()
        super().__init__(pool, self.config.timeout_s)

    def extract(self, text: str | bytes) -> str | None:
        """The final answer stated in ``text``, or None (see :mod:`verifiers.extract`)."""
        return extract_answer(clean_text(text, self.config.max_candidate_chars))

    def _prepare(self, gold: Any, candidate: str | bytes) -> Verdict | tuple[str, str]:
        """A verdict reached without a worker, or the (gold, answer) pair to check."""
        gold_str = gold_text(gold)
        answer = self.extract(candidate)
        if answer is None:
            return Verdict(VerdictStatus.UNPARSEABLE, detail="no answer found in the text")
        if normalize(answer) == normalize(gold_str):
            return Verdict(VerdictStatus.CORRECT, extracted=answer, detail="exact match")
        return gold_str, answer

    def verify(self, gold: Any, candidate: str | bytes) -> Verdict:
        """Checks candidate model text against ``gold`` (blocking, at most ~timeout_s).

        Returns:
            CORRECT / INCORRECT; UNPARSEABLE when no answer is found or math-verify
            cannot parse it; TIMEOUT when the comparison exceeds ``timeout_s`` seconds.
        """
        prepared = self._prepare(gold, candidate)
        if isinstance(prepared, Verdict):
            return prepared
        return self._run(check_math, prepared, extracted=prepared[1])

    async def averify(self, gold: Any, candidate: str | bytes) -> Verdict:
        """:meth:`verify` for asyncio callers; the event loop is never blocked."""
        prepared = self._prepare(gold, candidate)
        if isinstance(prepared, Verdict):
            return prepared
        return await self._arun(check_math, prepared, extracted=prepared[1])
