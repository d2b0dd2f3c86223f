"""Benchmarks: the ``ponder bench ...`` commands and what they measure with.

- :mod:`benchmarks.cli.speed` — the typer sub-app :data:`bench_app` (``server``, ``engine``,
  ``throughput``, ``compare``, ``accuracy``, ``flat``).
- :mod:`benchmarks.server` — server tok/s by concurrency, prefix-cache hit rate,
  search-shaped saturation load; Prometheus counter parsing.
- :mod:`benchmarks.engine` — select + backup operations/s of the search core (no model).
- :mod:`benchmarks.search_runs` — the bench's server, and measured search runs.
- :mod:`benchmarks.metrics` — pure arithmetic on counters and polls.
- :mod:`benchmarks.suite` — the presets and the accuracy table and plot.
- :mod:`benchmarks.flat` and :mod:`benchmarks.plain_client` — ponder's flat sampling vs
  a plain client sending the same requests.
- :mod:`benchmarks.cli.methods` — ``treepo``, ``prove`` and ``label``, the seed methods' benchmarks.
- :mod:`benchmarks.view` — ``ponder view`` on a synthetic big run, opened in headless Chromium.
"""
