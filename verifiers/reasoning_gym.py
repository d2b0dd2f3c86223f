"""reasoning-gym tasks checked with reasoning-gym's own scorers.

The gold for this verifier is a :class:`ReasoningGymGold`: the dataset name, the
arguments that generated it and the generated entry (question, answer, metadata), all
picklable. A pool worker rebuilds the dataset from (name, arguments), caches it, and calls
``score_answer(answer, entry)``; a score at or above the threshold is CORRECT.

The answer handed to the scorer is read by the dataset's answer type: for the datasets whose
answers are numbers (:data:`NUMERIC_DATASETS`: chain_sum, basic_arithmetic, gsm_symbolic, ...)
it is the number the text states ("The answer to the problem is 4." -> ``4``), never a
sentence; other datasets keep the free-form rules (:func:`extract_rg_answer`).

Some reasoning-gym scorers ``eval`` the model's answer (spiral_matrix, n_queens, ...) or
hand it to sympy's ``parse_expr`` (countdown, puzzle24, ...). ponder never does, but it
cannot stop a third-party scorer from doing so; it confines the risk instead: scoring
runs only in a worker process, under a hard timeout, behind the audit-hook sandbox of
:mod:`verifiers.sandbox`, and answers containing ``__`` (the usual route from ``eval`` to
``__import__``) are refused as INCORRECT unless the gold answer itself contains ``__``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from search.protocols import ConfigError, Verdict, VerdictStatus
from verifiers.base import PooledVerifier, WorkerOutcome, clean_text, guarded
from verifiers.extract import (
    MAX_ANSWER_CHARS,
    MAX_SCAN_CHARS,
    extract_answer_phrase,
    extract_boxed,
    extract_gsm8k,
    extract_last_number,
    extract_number,
    extract_tagged,
    result_side,
)
from verifiers.pool import WorkerPool

AnswerType = Literal["number", "free"]

NUMERIC_DATASETS: frozenset[str] = frozenset({
    "aiw", "basic_arithmetic", "binary_alternation", "chain_sum", "circuit_logic", "coin_flip",
    "count_bits", "count_primes", "decimal_arithmetic", "decimal_chain_sum", "dice", "gcd",
    "gsm_symbolic", "largest_island", "lcm", "leg_counting", "letter_counting", "maze",
    "number_format", "number_sequence", "power_function", "products", "rectangle_count",
    "rotten_oranges", "self_reference", "simple_equations", "simple_geometry",
})
"""reasoning-gym datasets whose every gold answer is one number (integer, decimal, ``a/b``
or ``1.5e-05``), read off 600 generated entries of each of the 106 datasets of
reasoning-gym 0.1.25 at its default settings (tests/verifiers/test_rg_verifier.py checks it
still holds). Their answers are extracted as numbers (:func:`verifiers.extract.extract_number`);
every other dataset's answer is free-form (grids, words, lists, expressions)."""


def answer_type(dataset: str | None) -> AnswerType:
    """``"number"`` for a dataset in :data:`NUMERIC_DATASETS`, else ``"free"``."""
    return "number" if dataset in NUMERIC_DATASETS else "free"


@dataclasses.dataclass(frozen=True)
class ReasoningGymGold:
    """Everything a worker needs to score one reasoning-gym problem.

    Attributes:
        dataset: registered reasoning-gym dataset name (e.g. ``"chain_sum"``).
        entry: the generated entry: ``question``, ``answer`` and ``metadata``.
        config_json: the ``create_dataset`` keyword arguments that generated ``entry``
            (size, seed, options) as canonical JSON; ``"{}"`` scores with the dataset's
            default config.
    """

    dataset: str
    entry: dict[str, Any]
    config_json: str = "{}"

    @classmethod
    def from_entry(cls, entry: dict[str, Any], config: dict[str, Any] | None = None
                   ) -> ReasoningGymGold:
        """Builds a gold from an entry whose metadata names its ``source_dataset``."""
        try:
            name = entry["metadata"]["source_dataset"]
        except (KeyError, TypeError):
            raise ConfigError("gold", entry, "a reasoning-gym entry needs "
                              "metadata.source_dataset") from None
        return cls(name, entry, json.dumps(config or {}, sort_keys=True))


class ReasoningGymVerifierConfig(BaseModel):
    """Settings of :class:`ReasoningGymVerifier`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(
        1.0, gt=0.0, le=1.0,
        description="Scorer result in (0, 1] at or above which an answer is CORRECT.",
    )
    timeout_s: float = Field(5.0, gt=0, le=300, description="Hard limit per check, seconds.")
    max_candidate_chars: int = Field(
        8000, ge=64, description="Characters of candidate text kept (from the end)."
    )
    answer: Literal["auto", "number", "free"] = Field(
        "auto", description="How the final answer is read from model text: 'number' (the one "
        "number the text states as its answer; never a sentence), 'free' (tags, boxed, 'the "
        "answer is', a one-line reply as it stands), 'auto' (number for the datasets in "
        "NUMERIC_DATASETS, such as chain_sum and basic_arithmetic, else free).",
    )


@functools.lru_cache(maxsize=64)
def _scorer(dataset: str, config_json: str) -> Callable[[str, dict[str, Any]], float]:
    import reasoning_gym

    config = json.loads(config_json)
    if not config:
        return reasoning_gym.get_score_answer_fn(dataset)
    return reasoning_gym.create_dataset(dataset, **config).score_answer


def _score(gold: ReasoningGymGold, answer: str, threshold: float) -> WorkerOutcome:
    score = float(_scorer(gold.dataset, gold.config_json)(answer, gold.entry))
    status = VerdictStatus.CORRECT if score >= threshold else VerdictStatus.INCORRECT
    return status.value, f"score={score:.4g}"


def check_reasoning_gym(gold: ReasoningGymGold, answer: str, threshold: float) -> WorkerOutcome:
    """Scores ``answer`` with reasoning-gym's scorer (runs in a pool worker).

    Returns:
        (status, detail): CORRECT when the score (in [0, 1]) is >= ``threshold``.
    """
    return guarded(_score, gold, answer, threshold)


def extract_rg_answer(text: str, max_chars: int = MAX_SCAN_CHARS,
                      answer: AnswerType = "free") -> str | None:
    """The final answer of a reasoning-gym task in ``text``, or None.

    ``answer="number"``: :func:`verifiers.extract.extract_number` (the number the text
    states). ``"free"``: reasoning-gym's ``<answer>...</answer>`` first (searched in the last
    ``max_chars`` characters, as rg answers such as grids can be long); then boxed, ``####``,
    "answer is"; then the whole text when it is one short line; then the last number.
    """
    if answer == "number":
        return extract_number(text, max_chars)
    tagged = extract_tagged(text, "answer", max_chars)
    if tagged:
        return tagged
    for rule in (extract_boxed, extract_gsm8k, extract_answer_phrase):
        answer = rule(text)
        if answer:
            return answer
    stripped = text.strip()
    if stripped and "\n" not in stripped and len(stripped) <= MAX_ANSWER_CHARS:
        return result_side(stripped)
    return extract_last_number(text)


class ReasoningGymVerifier(PooledVerifier):
    """The :class:`search.protocols.Verifier` for reasoning-gym tasks.

    Args:
        config: settings; defaults to :class:`ReasoningGymVerifierConfig` ``()``.
        pool: worker pool for scoring; None means the process-wide shared pool (whose
            workers must be able to import ``reasoning_gym``).
        dataset: the reasoning-gym dataset the verifier checks; with ``config.answer ==
            "auto"`` it sets how :meth:`extract` (which sees no gold) reads answers. None:
            free-form; :meth:`verify` always reads by its gold's dataset.
    """

    def __init__(self, config: ReasoningGymVerifierConfig | None = None,
                 pool: WorkerPool | None = None, dataset: str | None = None) -> None:
        self.config = config or ReasoningGymVerifierConfig()
        self.dataset = dataset
        super().__init__(pool, self.config.timeout_s)

    def answer_type(self, dataset: str | None = None) -> AnswerType:
        """How answers are read: ``config.answer`` unless 'auto', else by ``dataset`` (default:
        the verifier's own) and :data:`NUMERIC_DATASETS`."""
        if self.config.answer != "auto":
            return self.config.answer
        return answer_type(dataset if dataset is not None else self.dataset)

    def extract(self, text: str | bytes, dataset: str | None = None) -> str | None:
        """The final answer in ``text`` (see :func:`extract_rg_answer`), or None."""
        max_chars = self.config.max_candidate_chars
        return extract_rg_answer(clean_text(text, max_chars), max_chars,
                                 self.answer_type(dataset))

    def _prepare(self, gold: ReasoningGymGold | dict[str, Any], candidate: str | bytes
                 ) -> Verdict | tuple[ReasoningGymGold, str, float]:
        if not isinstance(gold, ReasoningGymGold):
            gold = ReasoningGymGold.from_entry(gold)
        answer = self.extract(candidate, gold.dataset)
        if answer is None:
            return Verdict(VerdictStatus.UNPARSEABLE, detail="no answer found in the text")
        if "__" in answer and "__" not in str(gold.entry.get("answer", "")):
            return Verdict(VerdictStatus.INCORRECT, extracted=answer,
                           detail="refused: answer contains '__'")
        return gold, answer, self.config.threshold

    def verify(self, gold: ReasoningGymGold | dict[str, Any], candidate: str | bytes) -> Verdict:
        """Scores candidate model text for one reasoning-gym problem (blocking).

        Args:
            gold: a :class:`ReasoningGymGold`, or a raw reasoning-gym entry (scored with
                the dataset's default config).
            candidate: free model text.

        Returns:
            CORRECT / INCORRECT by score; UNPARSEABLE when no answer is found or the
            scorer fails; TIMEOUT past ``timeout_s`` seconds.
        """
        prepared = self._prepare(gold, candidate)
        if isinstance(prepared, Verdict):
            return prepared
        return self._run(check_reasoning_gym, prepared, extracted=prepared[1])

    async def averify(self, gold: ReasoningGymGold | dict[str, Any],
                      candidate: str | bytes) -> Verdict:
        """:meth:`verify` for asyncio callers; the event loop is never blocked."""
        prepared = self._prepare(gold, candidate)
        if isinstance(prepared, Verdict):
            return prepared
        return await self._arun(check_reasoning_gym, prepared, extracted=prepared[1])
