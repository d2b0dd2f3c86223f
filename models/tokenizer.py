"""The policy checkpoint's tokenizer, loaded locally with transformers' ``AutoTokenizer``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.embedded import hf_offline
from search.protocols import ConfigError, PonderError


class HFTokenizer:
    """:class:`~search.protocols.Tokenizer` over a local Hugging Face checkpoint.

    Loads offline (``HF_HUB_OFFLINE=1``, ``local_files_only``); no hub access. ``decode``
    skips special tokens by default, as vLLM does for the text it returns, so
    ``decode(choice.token_ids)`` matches the server's text (an EOS token decodes to nothing).

    Args:
        checkpoint: Directory with the tokenizer files (the checkpoint vLLM serves).
        skip_special_tokens: Whether :meth:`decode` drops special tokens.
    """

    def __init__(self, checkpoint: Path | str, *, skip_special_tokens: bool = True) -> None:
        path = Path(checkpoint).expanduser()
        if not path.is_dir():
            raise ConfigError("checkpoint", str(path), "not a directory")
        with hf_offline():
            from transformers import AutoTokenizer

            try:
                self._tok: Any = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            except Exception as e:  # transformers raises OSError/ValueError/... for bad dirs
                raise PonderError(f"could not load a tokenizer from {path}: {e}") from e
        self.checkpoint = path
        self.skip_special_tokens = skip_special_tokens
        self.eos_token_id: int | None = self._tok.eos_token_id

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self._tok, "chat_template", None))

    def chat_follow_up(self, user: str) -> list[int]:
        """Token ids that close the assistant turn written so far and open a new ``user`` turn,
        ready for the reply. ``chat_prompt(q) + ids of the reply so far + chat_follow_up(u)``
        continues one conversation, so everything before the follow-up is a cached prefix.
        Without a chat template: ``user`` after a blank line."""
        if not self.has_chat_template:
            return self.encode(f"\n\n{user}\n\n")
        mark = "\x00ponder-reply\x00"
        text = self._tok.apply_chat_template(
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": mark},
             {"role": "user", "content": user}],
            add_generation_prompt=True, tokenize=False,
        )
        _, found, tail = str(text).rpartition(mark)
        if not found:
            raise PonderError("the chat template drops the assistant turn; a follow-up turn cannot be built")
        return self.encode(tail)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, no special tokens added."""
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(token_ids), skip_special_tokens=self.skip_special_tokens))

    def decode_with_offsets(self, token_ids: Sequence[int]) -> tuple[str, tuple[int, ...]]:
        """The text of ``token_ids`` and where each token's text starts in it, decoded
        incrementally in one pass (a token inside a multi-byte character starts where the
        character's text will). The offsets vLLM returns with logprobs, without asking the
        server for logprobs."""
        from tokenizers.decoders import DecodeStream

        stream = DecodeStream(skip_special_tokens=self.skip_special_tokens)
        backend = self._tok.backend_tokenizer
        offsets, chunks, length = [], [], 0
        for t in token_ids:
            offsets.append(length)
            chunk = stream.step(backend, int(t)) or ""
            chunks.append(chunk)
            length += len(chunk)
        return "".join(chunks), tuple(offsets)

    def chat_prompt(self, user: str, system: str | None = None) -> list[int]:
        """Token ids of the chat template applied once to one user turn, ready for the reply.

        The template's own special tokens (e.g. ChatML's ``<|im_start|>``) are included; no
        BOS is added on top. Without a chat template the user text is encoded as is (with
        the system text before it, separated by a blank line).
        """
        if not self.has_chat_template:
            text = f"{system}\n\n{user}" if system else user
            return self.encode(text)
        messages = [{"role": "system", "content": system}] if system is not None else []
        messages.append({"role": "user", "content": user})
        ids = self._tok.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # older/newer return types
            ids = ids["input_ids"]
        return [int(t) for t in ids]
