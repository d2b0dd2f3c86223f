"""What a reasoning step is: where it ends, and when a path is finished."""

from __future__ import annotations

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

    def is_terminal(self, proposal: StepProposal, depth: int) -> bool:
        """Whether a proposed step at ``depth`` (>= 1) ends its path (EOS or max depth)."""
        return proposal.finish_reason == "eos" or depth >= self.max_depth
