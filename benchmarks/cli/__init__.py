"""`ponder bench ...`: the benchmarks' typer app."""

from benchmarks.cli import methods as _methods  # noqa: F401  (registers `bench treepo`, `prove`, `label`)
from benchmarks.cli.speed import bench_app
from benchmarks import view as _view  # noqa: F401  (registers `bench view`)

__all__ = ["bench_app"]
