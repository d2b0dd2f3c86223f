"""The `ponder` command line: one typer app, one module per command group.

solve, run (:mod:`ponder.cli.run`); label, export (:mod:`ponder.cli.label`); train
(:mod:`ponder.cli.train`); loop (:mod:`ponder.cli.loop`); prove (:mod:`ponder.cli.prove`);
view (:mod:`ponder.cli.view`); serve, model (:mod:`ponder.cli.serve`); bench (the
:mod:`benchmarks` package's own app). Errors leave through :func:`ponder.cli.common.fail`.
"""

from __future__ import annotations

import os

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.cli import bench_app  # noqa: E402
from ponder.cli import label, loop, prove, run, serve, train, view  # noqa: E402

app = typer.Typer(help="ponder: tree-search reasoning engine for language models.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
for command in (serve.model, serve.serve, run.solve, run.run, view.view, prove.prove, label.label, label.export,
                train.train, loop.loop):
    app.command()(command)
app.add_typer(bench_app, name="bench")

if __name__ == "__main__":
    app()
