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
from collections.abc import AsyncIterator

from search.protocols import Interrupted

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
