"""What every pooled verifier shares: input hygiene and turning worker outcomes into Verdicts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from search.protocols import Verdict, VerdictStatus
from verifiers.pool import WorkerCrashed, WorkerPool, WorkerTimeout, shared_pool

logger = logging.getLogger(__name__)

WorkerOutcome = tuple[str, str]
"""What a worker check function returns: (VerdictStatus value, detail)."""


def clean_text(candidate: str | bytes | bytearray, max_chars: int) -> str:
    """Candidate model text made safe to handle: decoded, valid Unicode, bounded.

    Args:
        candidate: model output; bytes are decoded as UTF-8 with invalid sequences
            replaced by U+FFFD.
        max_chars: characters kept, counted from the end (the answer is at the end).

    Returns:
        At most ``max_chars`` characters of valid Unicode (no lone surrogates).
    """
    if isinstance(candidate, (bytes, bytearray)):
        text = bytes(candidate[-4 * max_chars :]).decode("utf-8", errors="replace")
    elif isinstance(candidate, str):
        text = candidate[-max_chars:]
        text = text.encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    else:
        text = str(candidate)
    return text[-max_chars:].replace("\x00", "")


class PooledVerifier:
    """Runs a module-level check function in a :class:`WorkerPool` and maps the outcome.

    A check past the timeout becomes TIMEOUT; a worker that dies becomes UNPARSEABLE
    (with the reason in ``detail``). Errors of the pool itself (not started, pickling)
    propagate: they are bugs or misconfiguration, not verdicts.

    Args:
        pool: the pool to run checks in; None means :func:`shared_pool`.
        timeout_s: hard limit per check in seconds; a check past it yields TIMEOUT.
    """

    def __init__(self, pool: WorkerPool | None, timeout_s: float) -> None:
        self._pool = pool
        self.timeout_s = timeout_s

    @property
    def pool(self) -> WorkerPool:
        return self._pool if self._pool is not None else shared_pool()

    def warm(self) -> None:
        """Starts the pool's workers and waits for their imports (see :meth:`WorkerPool.warm`)."""
        self.pool.warm()

    @staticmethod
    def _to_verdict(outcome: WorkerOutcome, extracted: str) -> Verdict:
        status, detail = outcome
        return Verdict(VerdictStatus(status), extracted=extracted, detail=detail)

    def _failure(self, exc: WorkerTimeout | WorkerCrashed, extracted: str) -> Verdict:
        if isinstance(exc, WorkerTimeout):
            return Verdict(VerdictStatus.TIMEOUT, extracted=extracted,
                           detail=f"check exceeded {self.timeout_s:g} s; worker replaced")
        logger.warning("verifier worker died: %s", exc)
        return Verdict(VerdictStatus.UNPARSEABLE, extracted=extracted,
                       detail=f"checker failed: {exc}")

    def _run(self, fn: Callable[..., WorkerOutcome], args: tuple[Any, ...],
             extracted: str) -> Verdict:
        try:
            return self._to_verdict(self.pool.run(fn, *args, timeout=self.timeout_s), extracted)
        except (WorkerTimeout, WorkerCrashed) as exc:
            return self._failure(exc, extracted)

    async def _arun(self, fn: Callable[..., WorkerOutcome], args: tuple[Any, ...],
                    extracted: str) -> Verdict:
        try:
            outcome = await self.pool.arun(fn, *args, timeout=self.timeout_s)
        except (WorkerTimeout, WorkerCrashed) as exc:
            return self._failure(exc, extracted)
        return self._to_verdict(outcome, extracted)


def guarded(check: Callable[..., WorkerOutcome], *args: Any) -> WorkerOutcome:
    """Runs ``check(*args)`` in the worker, turning any exception into UNPARSEABLE.

    A checker that raises (a sympy corner case, a scorer bug, ``MemoryError`` past the
    worker's memory cap, a refused side effect) could not check the answer; that is
    an outcome, not a failure of the pool.
    """
    try:
        return check(*args)
    except Exception as exc:  # noqa: BLE001 - the verdict records it
        return VerdictStatus.UNPARSEABLE.value, f"checker error: {type(exc).__name__}: {exc}"[:300]
