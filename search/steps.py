"""What a reasoning step is: where it ends, and when a path is finished."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from search.protocols import Sampling, StepProposal


class StepFormat(BaseModel):
    """How steps are cut and when a path ends.

    Two modes: a step ends at ``delimiter`` (default a blank line), or after exactly
    ``fixed_tokens`` tokens (TreePO segments). Setting ``fixed_tokens`` alone switches
    the delimiter off.

    Terminality (a deliberate choice): a step is terminal iff the policy emitted EOS
    (``finish_reason == "eos"``) or the step reaches ``max_depth``. A step cut at
    ``max_step_tokens`` is still an ordinary step, and an answer found in a non-final
    step does not end the path: answers are extracted from terminal paths only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    delimiter: str | None = Field(
        "\n\n", description="Stop string that ends a step (kept in the step text); None in fixed-token mode."
    )
    fixed_tokens: int | None = Field(
        None, ge=1, description="Segment length in tokens (TreePO); None in delimiter mode."
    )
    max_depth: int = Field(16, ge=1, description="Maximum number of steps in a path; a step at this depth is terminal.")
    max_step_tokens: int = Field(
        256, ge=1, description="Maximum tokens of one step in delimiter mode (vLLM max_tokens)."
    )

    max_solution_tokens: int = Field(
        1024,
        ge=1,
        description="Token limit of one whole-solution request (cot, self-consistency, best-of-N sample a "
        "solution in one request and cut it into steps afterwards); the request asks for "
        "min(this, max_depth x step tokens), and no more than an even share of a token budget's rest.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fixed_tokens_disable_default_delimiter(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("fixed_tokens") is not None and "delimiter" not in data:
            return {**data, "delimiter": None}
        return data

    @model_validator(mode="after")
    def _exactly_one_mode(self) -> StepFormat:
        if (self.delimiter is None) == (self.fixed_tokens is None):
            raise ValueError("set exactly one of delimiter (stop string) and fixed_tokens (segment length)")
        if self.delimiter == "":
            raise ValueError("delimiter must be a non-empty string")
        return self

    @property
    def step_tokens(self) -> int:
        """Maximum tokens per step request (``fixed_tokens`` or ``max_step_tokens``)."""
        return self.fixed_tokens if self.fixed_tokens is not None else self.max_step_tokens

    def sampling(
        self, n: int, *, temperature: float, top_p: float = 1.0, seed: int | None = None
    ) -> Sampling:
        """The request options for sampling ``n`` next steps."""
        return Sampling(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=self.step_tokens,
            stop=(self.delimiter,) if self.delimiter is not None else (),
            include_stop_str_in_output=True,
            logprobs=0,
            seed=seed,
        )

    @property
    def solution_tokens(self) -> int:
        """``max_tokens`` of a whole-solution request: what ``max_depth`` steps could hold,
        at most ``max_solution_tokens``."""
        return min(self.max_solution_tokens, self.max_depth * self.step_tokens)

    def split(self, solution: StepProposal, max_steps: int) -> list[StepProposal]:
        """Cuts a whole sampled solution into the steps that per-step sampling would have made.

        A step ends after the token that completes a delimiter (or after ``fixed_tokens``
        tokens); a token that straddles the delimiter stays whole, so step texts and token
        ids stay aligned. Inner steps finish with ``stop`` (``length`` for fixed segments); the
        last keeps the solution's finish reason. After ``max_steps`` steps the rest is dropped
        (per-step search would have stopped there). Without ``text_offsets`` the solution
        stays one step.

        Args:
            solution: One completion sampled without a step stop.
            max_steps: Steps the path may still take (>= 1).
        """
        n = len(solution.token_ids)
        offsets = solution.text_offsets
        if len(offsets) != n:
            cuts = []
        elif self.fixed_tokens is not None:
            cuts = list(range(self.fixed_tokens, n, self.fixed_tokens))
        else:
            cuts = self._delimiter_cuts(solution.text, offsets)
        bounds = [0, *cuts, n][: max_steps + 1]
        pieces = []
        for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
            last = k == len(bounds) - 2 and b == n
            start = _char(offsets, a, solution.text)
            end = len(solution.text) if b == n else _char(offsets, b, solution.text)
            pieces.append(StepProposal(
                text=solution.text[start:end],
                token_ids=solution.token_ids[a:b],
                logprobs=solution.logprobs[a:b],
                finish_reason=solution.finish_reason if last else ("stop" if self.delimiter else "length"),
                stop_reason=solution.stop_reason if last else self.delimiter,
                text_offsets=tuple(o - start for o in offsets[a:b]) if offsets else (),
            ))
        return pieces

    def _delimiter_cuts(self, text: str, offsets: Sequence[int]) -> list[int]:
        """Token indices where a new step starts: after each token that completes a delimiter."""
        assert self.delimiter is not None
        cuts: list[int] = []
        pos = 0
        while (found := text.find(self.delimiter, pos)) != -1:
            end = found + len(self.delimiter)
            cut = bisect.bisect_left(offsets, end)  # first token starting at or after the delimiter's end
            if cut >= len(offsets):
                break
            if not cuts or cut > cuts[-1]:
                cuts.append(cut)
            pos = max(end, offsets[cut])
        return cuts

    def is_terminal(self, proposal: StepProposal, depth: int) -> bool:
        """Whether a proposed step at ``depth`` (>= 1) ends its path (EOS or max depth)."""
        return proposal.finish_reason == "eos" or depth >= self.max_depth


def _char(offsets: Sequence[int], token: int, text: str) -> int:
    """Character position in ``text`` where token ``token`` starts."""
    if token == 0 or not offsets:
        return 0
    return min(max(offsets[token], 0), len(text))
