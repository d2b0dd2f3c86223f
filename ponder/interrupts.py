"""Ctrl-C (SIGINT) and SIGTERM stop a long command cleanly.

Inside :func:`stop_on_signals` either signal cancels the running task: nothing new is
dispatched, ``finally`` blocks and context managers run (results already recorded stay,
servers the command started are stopped), and the block raises
:class:`~search.protocols.Interrupted`. A re-run resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from search.protocols import Interrupted

T = TypeVar("T")
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
"""Shell convention: 128 + the signal number."""


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[None]:
    """Turns SIGINT / SIGTERM into cancellation of the current task and ``Interrupted``.

    Outside the main thread (where signal handlers cannot be set) it does nothing.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[str] = []

    def on_signal(name: str) -> None:
        if not received and task is not None:
            task.cancel()
        received.append(name)

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
            installed.append(sig)
        except (RuntimeError, ValueError, NotImplementedError):
            pass
    try:
        yield
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a daemon thread, awaited: a long synchronous job (a training
    stage) inside :func:`stop_on_signals`.

    Unlike ``asyncio.to_thread``, whose executor ``asyncio.run`` joins at exit, an interrupted
    command does not wait for the job to end: it exits once its cleanup has run and the job
    stops with the process, to resume from its last checkpoint on the re-run (as after a kill).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def work() -> None:
        try:
            result, error = fn(*args, **kwargs), None
        except BaseException as exc:  # handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name=f"ponder-{getattr(fn, '__name__', 'job')}", daemon=True).start()
    return await done
