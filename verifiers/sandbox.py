"""Hardening of verifier worker processes (runs inside the workers only).

ponder never evaluates model text as Python, but some third-party scorers do: several
reasoning-gym ``score_answer`` methods call ``eval`` or sympy's ``parse_expr`` on the
model's answer. So each worker, once it has imported what it needs, installs an audit
hook (PEP 578) that refuses the side effects such code could reach for: starting
processes, opening sockets, loading native libraries, and creating, writing, renaming
or deleting files. Reading files and importing modules stay allowed. The hook cannot be
removed for the life of the process, and a worker serves nothing but verification.

This is defence in depth for a worker that is already isolated and time-limited, not a
sandbox against a determined attacker: pure computation (and reading files) still runs.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys

_BLOCKED_EVENT_PREFIXES = (
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.kill", "os.killpg", "os.remove", "os.unlink", "os.rmdir", "os.rename",
    "os.replace", "os.truncate", "os.chmod", "os.chown", "os.symlink", "os.link",
    "os.mkdir", "os.putenv", "os.unsetenv", "os.setxattr", "os.removexattr",
    "os.utime", "subprocess.", "pty.", "socket.", "ctypes.", "shutil.", "webbrowser.",
    "urllib.", "http.", "ftplib.", "smtplib.", "sys.addaudithook",
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class SandboxViolation(PermissionError):
    """A worker tried a side effect that verification never needs."""


def _audit_hook(event: str, args: tuple) -> None:
    if event == "open":
        mode, flags = (args[1], args[2]) if len(args) >= 3 else (None, 0)
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else False
        if writes or (isinstance(flags, int) and flags & _WRITE_FLAGS):
            raise SandboxViolation(f"verifier worker may not write files: {args[0]!r}")
    elif event.startswith(_BLOCKED_EVENT_PREFIXES):
        raise SandboxViolation(f"verifier worker may not perform {event!r}")


def init_worker(preload: tuple[str, ...], max_memory_mb: int | None) -> None:
    """Pool initializer: import ``preload``, cap memory, then arm the audit hook.

    Args:
        preload: module names imported before the hook is armed (imports may write
            caches, e.g. matplotlib's font cache when reasoning-gym loads).
        max_memory_mb: address-space limit for this worker in MiB, or None for none.
            An answer that makes sympy allocate past it fails with ``MemoryError``.
    """
    for name in preload:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # math-verify warns once per process that its own signal timeouts are off; the pool
    # enforces hard timeouts instead, so the warning is noise.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    if max_memory_mb is not None:
        import resource

        limit = max_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.addaudithook(_audit_hook)
