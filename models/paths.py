"""Where ponder keeps its converted models (cache) and its server record and logs (state).

Both follow the XDG base-directory convention: ``$XDG_CACHE_HOME/ponder`` (default
``~/.cache/ponder``) and ``$XDG_STATE_HOME/ponder`` (default ``~/.local/state/ponder``).
They are read from the environment on every call, never at import time.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var, "").strip()
    # The XDG spec says relative paths are invalid and must be ignored.
    base = Path(value) if value and os.path.isabs(value) else Path.home() / default
    return base / "ponder"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ponder`` (default ``~/.cache/ponder``); not created."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def state_dir() -> Path:
    """``$XDG_STATE_HOME/ponder`` (default ``~/.local/state/ponder``); not created."""
    return _xdg("XDG_STATE_HOME", ".local/state")
