"""`ponder view`: a run directory (or a folder of them) as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ponder.cli.common import fail
from search.protocols import PonderError


def view(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, or a folder of run directories (a benchmark, a loop).")],
    problem_id: Annotated[Optional[str], typer.Argument(help="Open on this problem's tree.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="The HTML file; default RUN_DIR/view.html.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open it in the default browser.")] = False,
    gold: Annotated[bool, typer.Option(help="Show gold answers of finished problems (from the run's task set).")] = True,
) -> None:
    """Write one self-contained HTML file (run report, problem table, search trees) and print its path."""
    from ponder.view import write_view

    try:
        path = write_view(run_dir, out, problem_id, with_gold=gold)
    except PonderError as err:
        fail(err)
    print(path.resolve())
    if open_:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
