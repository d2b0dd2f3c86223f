"""What every command shares: the console, and the one way out on an error.

Exit codes: 0 done; 1 done, but some problems (theorems) errored: a re-run retries them; 2 bad
input (a config, an option, a file); 3 the model server could not be recovered (an
``EngineFault``; a re-run resumes); 130 / 143 stopped by SIGINT / SIGTERM (a re-run resumes).
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()

ERRORED = 1
"""The command finished, but some problems errored: re-running it retries them."""


def fail(err: BaseException | str, hint: str | None = None) -> NoReturn:
    """Prints ``err`` (an exception or a message; and ``hint``) and exits with its code: 130 / 143 for an interrupt
    (``Interrupted`` by SIGINT / SIGTERM, or a KeyboardInterrupt), 3 for an ``EngineFault``,
    else 2."""
    from ponder.interrupts import EXIT_CODES
    from search.protocols import EngineFault, Interrupted

    # escaped: a message's own brackets (pip install -e '.[ray]', a list) are text, not rich markup
    tail = escape(f"; {hint}") if hint else ""
    if isinstance(err, Interrupted | KeyboardInterrupt):
        code = EXIT_CODES.get(err.signal_name, 130) if isinstance(err, Interrupted) else 130
        console.print(f"[bold yellow]stopped:[/] {escape(str(err or 'interrupted'))}{tail}")
        raise typer.Exit(code) from None
    console.print(f"[bold red]error:[/] {escape(str(err))}{tail}")
    raise typer.Exit(3 if isinstance(err, EngineFault) else 2) from None
