"""`ponder bench ...`: the benchmarks' typer app, mounted by :mod:`ponder.cli.main`.

:mod:`benchmarks.cli.speed` times the system (model server, search core, search runs,
sampling beside a plain client, in-tree parallelism, the viewer); :mod:`benchmarks.cli.methods`
sets methods side by side at equal budgets (accuracy, TreePO sampling, label generators,
prover configs, step judges, judge-guided search vs self-consistency); :mod:`benchmarks.cli.scale`
runs replicas of one checkpoint, and the single driver against many fake ones.
Their shared options are in :mod:`benchmarks.cli.options`; errors leave through
:func:`ponder.cli.common.fail`.
"""

import typer

from benchmarks.cli import methods, scale, speed

bench_app = typer.Typer(help="Benchmarks: server ceiling, engine overhead, search throughput, algorithm comparison, "
                        "flat sampling vs a plain client, label generators' cost, TreePO sampling.",
                        no_args_is_help=True)
for name, command in (("server", speed.server), ("engine", speed.engine), ("throughput", speed.throughput),
                      ("compare", speed.compare), ("accuracy", methods.accuracy), ("flat", speed.flat),
                      ("treepo", methods.treepo), ("prove", methods.prove), ("label", methods.label),
                      ("parallel", speed.parallel), ("view", speed.view), ("prm", methods.prm),
                      ("guided", methods.guided), ("replicas", scale.replicas), ("scale", scale.scale)):
    bench_app.command(name)(command)

__all__ = ["bench_app"]
