"""A :class:`~search.protocols.Policy` that runs a small model in-process with transformers.

For tests, value heads and machines without a vLLM server. Each ``propose`` is one batched
``generate`` call (``sampling.n`` sequences via ``num_return_sequences``) run in a worker
thread, so the event loop keeps serving other trees; calls are serialised on one lock (the
model is shared and the CPU is the bottleneck anyway).

Semantics follow vLLM's so that traces from either backend look alike:

- ``token_ids`` include the EOS token when the model ended (finish ``eos``) and the token
  that completed a stop string (finish ``stop``); the text stops at the stop string
  (kept when ``include_stop_str_in_output``). Otherwise finish is ``length``.
- ``logprobs`` are the *raw* model log-probabilities of the sampled tokens (before
  temperature / top-p), as vLLM reports by default.
- ``seed`` seeds torch's global RNG for that call (inside the lock).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.embedded import hf_offline
from search.protocols import (
    ConfigError,
    FinishReason,
    Generation,
    PonderError,
    Sampling,
    StepProposal,
    Usage,
)


class TransformersPolicy:
    """In-process policy over a local Hugging Face causal-LM checkpoint.

    Args:
        checkpoint: Checkpoint directory (config, weights, tokenizer).
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.
        dtype: torch dtype name for the weights (``"bfloat16"``, ``"float32"``, ...).
    """

    def __init__(self, checkpoint: Path | str, device: str = "cpu", dtype: str = "bfloat16") -> None:
        path = Path(checkpoint).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError("checkpoint", str(path), "not a checkpoint directory (no config.json)")
        with hf_offline():
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ConfigError("dtype", dtype, "not a torch dtype name")
            try:
                self._tok: Any = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
                self._model: Any = AutoModelForCausalLM.from_pretrained(
                    str(path), dtype=getattr(torch, dtype), local_files_only=True
                ).to(device)
            except Exception as e:
                raise PonderError(f"could not load {path} with transformers: {e}") from e
        self._model.eval()
        self._torch = torch
        self.checkpoint = path
        self.device = device
        self.eos_token_id: int | None = self._tok.eos_token_id
        self._lock = threading.Lock()

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        if not prefix:
            raise ConfigError("prefix", list(prefix), "an empty prefix")
        started = time.perf_counter()
        proposals, usage = await asyncio.to_thread(self._generate, list(prefix), sampling)
        usage.wall_seconds = time.perf_counter() - started
        return Generation(proposals=proposals, usage=usage)

    def _generate(self, prefix: list[int], sampling: Sampling) -> tuple[tuple[StepProposal, ...], Usage]:
        torch = self._torch
        input_ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
        sample = sampling.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "num_return_sequences": sampling.n,
            "do_sample": sample,
            "return_dict_in_generate": True,
            "output_logits": sampling.logprobs is not None,
            "pad_token_id": self._tok.pad_token_id if self._tok.pad_token_id is not None else self.eos_token_id,
            "top_k": None,
        }
        if sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(temperature=None, top_p=None)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self._tok)
        with self._lock, torch.inference_mode():
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            out = self._model.generate(
                input_ids, attention_mask=torch.ones_like(input_ids), **kwargs
            )
        generated = out.sequences[:, len(prefix):].tolist()
        token_logprobs: list[list[float]] | None = None
        if sampling.logprobs is not None and out.logits:
            # logits: one (n, vocab) tensor per generated position.
            logits = torch.stack(out.logits, dim=1).float()
            logp = torch.log_softmax(logits, dim=-1)
            ids = out.sequences[:, len(prefix):].unsqueeze(-1)
            token_logprobs = logp.gather(-1, ids).squeeze(-1).tolist()
        proposals = []
        total = 0
        for i, tokens in enumerate(generated):
            proposal = self._proposal(tokens, token_logprobs[i] if token_logprobs else None, sampling)
            total += len(proposal.token_ids)
            proposals.append(proposal)
        usage = Usage(prompt_tokens=len(prefix), generated_tokens=total, calls=1)
        return tuple(proposals), usage

    def _proposal(self, tokens: list[int], logprobs: list[float] | None, sampling: Sampling) -> StepProposal:
        """Cuts one generated row at EOS / the first stop string, as vLLM would."""
        finish: FinishReason = "length"
        stop_reason: str | None = None
        end = len(tokens)
        text: str | None = None
        for i, tok in enumerate(tokens):
            if tok == self.eos_token_id:
                finish, end = "eos", i + 1
                text = self._decode(tokens[:i])
                break
            if sampling.stop:
                decoded = self._decode(tokens[: i + 1])
                hit = _first_stop(decoded, sampling.stop)
                if hit is not None:
                    pos, stop_reason = hit
                    finish, end = "stop", i + 1
                    cut = pos + len(stop_reason) if sampling.include_stop_str_in_output else pos
                    text = decoded[:cut]
                    break
        kept = tokens[:end]
        if text is None:
            text = self._decode(kept)
        return StepProposal(
            text=text,
            token_ids=tuple(kept),
            logprobs=tuple(logprobs[:end]) if logprobs is not None else (),
            finish_reason=finish,
            stop_reason=stop_reason,
        )

    def _decode(self, tokens: list[int]) -> str:
        return str(self._tok.decode(tokens, skip_special_tokens=True))


def _first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """The earliest stop string in ``text`` as ``(position, stop)``, or None."""
    best: tuple[int, str] | None = None
    for s in stops:
        pos = text.find(s)
        if pos >= 0 and (best is None or pos < best[0]):
            best = (pos, s)
    return best
