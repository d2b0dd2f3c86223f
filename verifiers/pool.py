"""A small pool of worker processes with hard per-call timeouts.

Built on pebble's ``ProcessPool``: when a call runs past its timeout, the worker running
it is terminated and the pool starts a fresh one, so a hung sympy simplification costs
one worker restart, never a hang of the caller. No ``signal.alarm`` is used by the
caller, so :meth:`WorkerPool.run` works from any thread, and :meth:`WorkerPool.arun`
awaits the result without blocking the asyncio event loop.

Workers are started lazily on the first call and stopped by :meth:`WorkerPool.close`,
by leaving a ``with`` block, or at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import pebble
from pydantic import BaseModel, ConfigDict, Field

from search.protocols import PonderError
from verifiers.sandbox import init_worker

T = TypeVar("T")


class WorkerTimeout(PonderError):
    """A pooled call ran past its timeout; its worker was killed and replaced."""

    def __init__(self, fn_name: str, timeout_s: float) -> None:
        self.fn_name, self.timeout_s = fn_name, timeout_s
        super().__init__(f"{fn_name} ran past its {timeout_s:g} s timeout; worker replaced")


class WorkerCrashed(PonderError):
    """A worker died during a call (killed by a signal, out of memory, ...)."""


class PoolConfig(BaseModel):
    """Settings of a :class:`WorkerPool`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_workers: int = Field(2, ge=1, le=64, description="Worker processes (count).")
    start_method: Literal["spawn", "forkserver", "fork"] = Field(
        "spawn",
        description="How workers start. 'spawn' is safe in a process with threads "
        "(vLLM, asyncio executors); 'fork' starts faster but may deadlock there.",
    )
    preload: tuple[str, ...] = Field(
        ("math_verify", "reasoning_gym"),
        description="Modules each worker imports at start, before its sandbox is armed.",
    )
    max_memory_mb: int | None = Field(
        4096, ge=256, description="Address-space limit per worker in MiB; None for none."
    )


class WorkerPool:
    """Lazily started process pool; each call gets a hard timeout in seconds.

    Args:
        config: pool settings; defaults to :class:`PoolConfig` ``()``.
    """

    def __init__(self, config: PoolConfig | None = None) -> None:
        self.config = config or PoolConfig()
        self._pool: pebble.ProcessPool | None = None
        self._lock = threading.Lock()
        self._atexit_registered = False

    def _ensure(self) -> pebble.ProcessPool:
        with self._lock:
            if self._pool is None or not self._pool.active:
                cfg = self.config
                self._pool = pebble.ProcessPool(
                    max_workers=cfg.num_workers,
                    initializer=init_worker,
                    initargs=(cfg.preload, cfg.max_memory_mb),
                    context=multiprocessing.get_context(cfg.start_method),
                )
                if not self._atexit_registered:
                    atexit.register(self.close)
                    self._atexit_registered = True
            return self._pool

    def submit(self, fn: Callable[..., T], *args: Any, timeout: float) -> Any:
        """Schedules ``fn(*args)`` in a worker; returns a ``concurrent.futures.Future``.

        ``fn`` and ``args`` must be picklable (``fn`` a module-level function). The
        ``timeout`` (seconds, > 0) counts from when a worker starts the call.
        """
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        return self._ensure().schedule(fn, args=args, timeout=timeout)

    @staticmethod
    def _translate(fn: Callable[..., Any], timeout: float, exc: BaseException) -> BaseException:
        if isinstance(exc, TimeoutError) and exc.args[:1] == ("Task timeout",):
            return WorkerTimeout(getattr(fn, "__name__", repr(fn)), timeout)
        if isinstance(exc, pebble.ProcessExpired):
            return WorkerCrashed(f"verifier worker died (exit code {exc.exitcode})")
        return exc

    def run(self, fn: Callable[..., T], *args: Any, timeout: float) -> T:
        """Runs ``fn(*args)`` in a worker and returns its result (blocking).

        Raises:
            WorkerTimeout: the call took longer than ``timeout`` seconds.
            WorkerCrashed: the worker process died.
            Exception: whatever ``fn`` raised, re-raised here.
        """
        future = self.submit(fn, *args, timeout=timeout)
        try:
            return future.result()
        except BaseException as exc:
            translated = self._translate(fn, timeout, exc)
            if translated is exc:
                raise
            raise translated from exc

    async def arun(self, fn: Callable[..., T], *args: Any, timeout: float) -> T:
        """Like :meth:`run`, awaited without blocking the event loop.

        Cancelling the awaiting task cancels the call (pebble stops its worker).
        """
        future = self.submit(fn, *args, timeout=timeout)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            translated = self._translate(fn, timeout, exc)
            if translated is exc:
                raise
            raise translated from exc

    def warm(self, timeout_s: float = 120.0) -> int:
        """Starts the workers and returns once each has run its initializer (the preload
        imports: seconds of CPU per worker), or ``timeout_s`` has passed.

        A caller that shares the machine with a local model server warms the pool before
        it starts the clock, so the imports do not take the server's cores mid-run.

        Returns:
            The number of distinct workers that answered.
        """
        deadline = time.monotonic() + timeout_s
        seen: set[int] = set()
        while len(seen) < self.config.num_workers and time.monotonic() < deadline:
            calls = [self.submit(_worker_pid, timeout=timeout_s) for _ in range(self.config.num_workers)]
            seen.update(call.result() for call in calls)
        return len(seen)

    def close(self) -> None:
        """Stops the workers now (running calls are abandoned). Safe to call twice."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _worker_pid() -> int:
    """The worker's pid, after a short pause, so that calls sent together land on different
    workers (a worker runs one call at a time)."""
    time.sleep(0.05)
    return os.getpid()


_shared: WorkerPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> WorkerPool:
    """The process-wide default pool (default :class:`PoolConfig`), created on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = WorkerPool()
        return _shared
