"""A vLLM ``/v1/completions`` reply, parsed into plain frozen records.

Nothing from httpx or vLLM leaves :mod:`models.client`; this module holds the reply records
and the parsing (finish reasons, token ids, logprobs, usage with cached prompt tokens).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from search.protocols import FinishReason, ModelServerError, Usage

TOKEN_ID_PREFIX = "token_id:"
"""How vLLM names a token in logprobs when asked ``return_tokens_as_token_ids``."""


@dataclasses.dataclass(frozen=True)
class Choice:
    """One sampled completion, converted from vLLM's reply."""

    text: str
    token_ids: tuple[int, ...]
    """Every generated token, including an EOS token or the token that completed a stop
    string (vLLM's text omits the former, and the latter when ``include_stop_str_in_output``
    is false, so ``decode(token_ids)`` may extend past ``text``)."""
    logprobs: tuple[float, ...]
    """Log-probability of each generated token; empty when logprobs were not requested."""
    top_logprobs: tuple[Mapping[str | int, float], ...]
    """Per position, the top alternatives: token id (int) -> logprob when the request asked
    ``tokens_as_ids``, else token text -> logprob. Empty when not requested."""
    finish_reason: FinishReason
    stop_reason: str | None
    text_offsets: tuple[int, ...] = ()
    """Start of each generated token's text in ``text``; empty when logprobs were not requested."""


@dataclasses.dataclass(frozen=True)
class Completion:
    """The result of one ``/v1/completions`` request."""

    choices: tuple[Choice, ...]
    usage: Usage
    endpoint: str


def finish_reason(raw_finish: str | None, raw_stop: object) -> tuple[FinishReason, str | None]:
    """Maps vLLM's ``(finish_reason, stop_reason)`` to ponder's finish reason and stop string.

    ``stop`` with a stop string -> ``("stop", string)``; ``stop`` with no stop reason (the
    EOS token) or with an integer one (a ``stop_token_ids`` token) -> ``("eos", None)``;
    ``length`` -> ``("length", None)``; anything else (``abort``, missing) -> ``("error", None)``.
    """
    if raw_finish == "stop":
        if isinstance(raw_stop, str):
            return "stop", raw_stop
        return "eos", None
    if raw_finish == "length":
        return "length", None
    return "error", None


def parse_completion(body: Mapping[str, Any], *, endpoint: str = "", wall_seconds: float = 0.0,
                     tokens_as_ids: bool = False) -> Completion:
    """Converts a ``/v1/completions`` JSON reply into a :class:`Completion`.

    Raises:
        ModelServerError: the reply lacks the fields ponder needs (not retryable).
    """
    try:
        raw = body["choices"]
        if not isinstance(raw, list) or not all(isinstance(c, Mapping) for c in raw):
            raise TypeError("choices is not a list of objects")
        raw_choices = sorted(raw, key=lambda c: c.get("index", 0))
        choices = tuple(_parse_choice(c, tokens_as_ids) for c in raw_choices)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelServerError(
            endpoint, f"malformed completion reply ({type(e).__name__}: {e})", retryable=False
        ) from e
    usage = parse_usage(body.get("usage") or {})
    usage.calls = 1
    usage.wall_seconds = wall_seconds
    return Completion(choices=choices, usage=usage, endpoint=endpoint)


def parse_usage(raw: Mapping[str, Any]) -> Usage:
    """Reads OpenAI-style usage: prompt, completion and cached prompt tokens (if reported)."""
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        generated_tokens=int(raw.get("completion_tokens") or 0),
        cached_prompt_tokens=int(details.get("cached_tokens") or 0),
    )


def _parse_choice(raw: Mapping[str, Any], tokens_as_ids: bool) -> Choice:
    token_ids = raw.get("token_ids")
    if token_ids is None:
        raise KeyError("token_ids (the server ignored return_token_ids; vLLM >= 0.10 needed)")
    lp = raw.get("logprobs") or {}
    logprobs = tuple(float(x) if x is not None else float("-inf") for x in lp.get("token_logprobs") or ())
    top: tuple[Mapping[str | int, float], ...] = tuple(
        {(_token_key(k) if tokens_as_ids else k): float(v) for k, v in (d or {}).items()}
        for d in lp.get("top_logprobs") or ()
    )
    reason, stop = finish_reason(raw.get("finish_reason"), raw.get("stop_reason"))
    offsets = tuple(int(x) for x in lp.get("text_offset") or ())
    return Choice(
        text=str(raw.get("text") or ""),
        token_ids=tuple(int(t) for t in token_ids),
        logprobs=logprobs,
        top_logprobs=top,
        finish_reason=reason,
        stop_reason=stop,
        text_offsets=offsets if len(offsets) == len(token_ids) else (),
    )


def _token_key(key: str) -> int | str:
    if key.startswith(TOKEN_ID_PREFIX):
        return int(key[len(TOKEN_ID_PREFIX):])
    return key


def error_message(body_text: str, fallback: str = "") -> str:
    """The server's error message from an error reply's body (vLLM/OpenAI
    ``{"error": {"message": ...}}``, ``message`` or ``detail``), else the body text itself."""
    try:
        body = json.loads(body_text)
    except ValueError:
        return body_text[:300] or fallback
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and "message" in err:
            return str(err["message"])[:300]
        if isinstance(body.get("message"), str):
            return body["message"][:300]
        if isinstance(body.get("detail"), str):
            return body["detail"][:300]
    return str(body)[:300]
