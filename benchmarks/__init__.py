"""Benchmarks: the ``ponder bench ...`` commands and what they measure with.

- :mod:`benchmarks.cli` — the typer sub-app :data:`bench_app` that ``ponder bench`` mounts:
  :mod:`~benchmarks.cli.speed` (``server``, ``engine``, ``throughput``, ``compare``, ``flat``,
  ``parallel``, ``view``), :mod:`~benchmarks.cli.methods` (``accuracy``, ``treepo``, ``label``,
  ``prove``, ``prm``) and :mod:`~benchmarks.cli.scale` (``replicas``, ``scale``).
- :mod:`benchmarks.server` — server tok/s by concurrency, prefix-cache hit rate,
  search-shaped saturation load; Prometheus counter parsing.
- :mod:`benchmarks.engine` — select + backup operations/s of the search core (no model).
- :mod:`benchmarks.search_runs` — the bench's server, measured search runs and their reports.
- :mod:`benchmarks.metrics` — pure arithmetic on counters and polls.
- :mod:`benchmarks.suite` — the presets and the accuracy table and plot.
- :mod:`benchmarks.flat` and :mod:`benchmarks.plain_client` — ponder's flat sampling vs
  a plain client sending the same requests.
- :mod:`benchmarks.parallel` — fixed vs adaptive in-tree parallelism;
  :mod:`benchmarks.replicas` — tree-affine vs per-request routing over N replicas;
  :mod:`benchmarks.driver` — the single driver's ceiling against many fake replicas
  (:mod:`benchmarks.fake_server`: an OpenAI-compatible fake, one process per replica, also
  the orchestration tests'), and :mod:`benchmarks.shards` — the same problems over N Ray
  driver actors and one writer (``ponder run``'s ``drivers: N``, :mod:`ponder.shards`).
- :mod:`benchmarks.treepo`, :mod:`benchmarks.label`, :mod:`benchmarks.prove`,
  :mod:`benchmarks.prm` — TreePO sampling, the label generators' cost, prover configs, step
  judges on planted first errors.
- :mod:`benchmarks.view` — ``ponder view`` on a synthetic big run, opened in headless Chromium.
- ``python -m`` scripts: :mod:`benchmarks.rl` (held-out evidence before and after an RL
  recipe), :mod:`benchmarks.extraction` (answer extraction on real run texts).

Results worth keeping (reports and plots of long runs) are under ``benchmarks/results/``;
``benchmarks/README.md`` gives every command's settings and numbers.
"""
