"""Ctrl-C / SIGTERM during a long synchronous job (a loop's training stage): the command exits
promptly with the signal's code instead of waiting for the job (issue 10 §3: resumable at every
stage; the brief: loses nothing on Ctrl-C)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ponder.interrupts import in_thread

ROOT = Path(__file__).parents[2]
PROGRAM = """
import asyncio, sys, time
from ponder.interrupts import EXIT_CODES, in_thread, stop_on_signals
from search.protocols import Interrupted

async def main():
    async with stop_on_signals():
        print("ready", flush=True)
        await in_thread(time.sleep, 120)  # a training stage that would run for minutes

try:
    asyncio.run(main())
except Interrupted as stop:
    print("cleanup ran", flush=True)
    sys.exit(EXIT_CODES[stop.signal_name])
"""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_command_waiting_on_a_thread_job(sig: signal.Signals, code: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    start = time.monotonic()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - start < 20  # not the job's 120 s
    assert proc.returncode == code and "cleanup ran" in out


def test_in_thread_returns_the_result_and_raises_the_error() -> None:
    assert asyncio.run(in_thread(lambda a, b=0: a + b, 2, b=3)) == 5

    def boom() -> None:
        raise ValueError("bad stage")

    with pytest.raises(ValueError, match="bad stage"):
        asyncio.run(in_thread(boom))
