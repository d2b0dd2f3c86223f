"""Benchmarks: the ``ponder bench ...`` commands and what they measure with.

- :mod:`ponder.bench.cli` — the typer sub-app :data:`bench_app` (``server``, ``engine``,
  ``throughput``, ``compare``, ``accuracy``, ``flat``).
- :mod:`ponder.bench.server` — server tok/s by concurrency, prefix-cache hit rate,
  search-shaped saturation load; Prometheus counter parsing.
- :mod:`ponder.bench.engine` — select + backup operations/s of the search core (no model).
- :mod:`ponder.bench.search_runs` — the bench's server, and measured search runs.
- :mod:`ponder.bench.metrics` — pure arithmetic on counters and polls.
- :mod:`ponder.bench.suite` — the presets and the accuracy table and plot.
- :mod:`ponder.bench.flat` and :mod:`ponder.bench.plain_client` — ponder's flat sampling vs
  a plain client sending the same requests.
- :mod:`ponder.bench.cli_methods` — ``treepo``, ``prove`` and ``label``, the seed methods' benchmarks.
- :mod:`ponder.bench.view` — ``ponder view`` on a synthetic big run, opened in headless Chromium.
"""

from ponder.bench import cli_methods as _methods  # noqa: F401  (registers `bench treepo`, `prove`, `label`)
from ponder.bench import view as _view  # noqa: F401  (registers `bench view`)
from ponder.bench.cli import bench_app

__all__ = ["bench_app"]
