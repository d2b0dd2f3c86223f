"""``Policy`` over the vLLM client: token-id prefixes in, step proposals out."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from models.client import VLLMClient
from search.protocols import Generation, Sampling, StepProposal


class VLLMPolicy:
    """:class:`~search.protocols.Policy` backed by :class:`VLLMClient` (one request per call).

    ``propose(prefix, sampling)`` sends the prefix token ids with the sampling options and
    returns ``sampling.n`` proposals in the server's order.

    Args:
        client: The HTTP client.
        decode_with_offsets: Token ids -> (text, start of each token's text), e.g.
            ``HFTokenizer.decode_with_offsets``. With it, a request made without logprobs
            (which cost the server time) still gets ``text_offsets``, computed here; they
            are kept only when the decoded text equals the server's.
    """

    def __init__(
        self,
        client: VLLMClient,
        decode_with_offsets: Callable[[Sequence[int]], tuple[str, tuple[int, ...]]] | None = None,
    ) -> None:
        self.client = client
        self.decode_with_offsets = decode_with_offsets
        self.offset_mismatches = 0
        """Completions whose locally decoded text differed from the server's (no offsets)."""

    def _offsets(self, text: str, token_ids: tuple[int, ...], given: tuple[int, ...]) -> tuple[int, ...]:
        if given or self.decode_with_offsets is None or not token_ids:
            return given
        decoded, offsets = self.decode_with_offsets(token_ids)
        if decoded != text:
            self.offset_mismatches += 1
            return ()
        return offsets

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        started = time.perf_counter()
        completion = await self.client.complete(
            prefix,
            n=sampling.n,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop=sampling.stop,
            include_stop_str_in_output=sampling.include_stop_str_in_output,
            logprobs=sampling.logprobs,
            seed=sampling.seed,
        )
        usage = completion.usage
        usage.wall_seconds = time.perf_counter() - started
        proposals = tuple(
            StepProposal(
                text=c.text,
                token_ids=c.token_ids,
                logprobs=c.logprobs,
                finish_reason=c.finish_reason,
                stop_reason=c.stop_reason,
                text_offsets=self._offsets(c.text, c.token_ids, c.text_offsets),
            )
            for c in completion.choices
        )
        return Generation(proposals=proposals, usage=usage)
