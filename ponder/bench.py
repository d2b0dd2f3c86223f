"""`ponder bench ...`: measurements that print ratios taken in one run (not timed tests)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

from search.protocols import PonderError

bench_app = typer.Typer(help="Benchmarks: server ceiling, engine overhead, search throughput, algorithm comparison.",
                        no_args_is_help=True)
console = Console()


@bench_app.command("server")
def server(
    endpoint: Annotated[Optional[str], typer.Option(help="Server URL; default: a recorded or new embedded server.")] = None,
    concurrency: Annotated[list[int], typer.Option(help="Concurrencies to measure.")] = [1, 8, 32, 64],
    max_tokens: Annotated[int, typer.Option(help="Generated tokens per request.")] = 128,
) -> None:
    """Generated tok/s at 1, 8, 32, 64 concurrent requests, and the shared-prefix cache hit rate."""
    from models.bench import bench_server, format_rows
    from ponder.config import ModelConfig
    from ponder.engine import model_endpoints

    try:
        model = ModelConfig(endpoints=[endpoint] if endpoint else [])
        with model_endpoints(model) as (endpoints, _, _):
            rows = bench_server(endpoints[0], tuple(concurrency), max_tokens)
    except PonderError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(2) from None
    print(format_rows(rows))
    peak = max(r.tokens_per_second for r in rows if r.load == "throughput")
    print(f"saturated generated tok/s (max over concurrencies): {peak:.1f}")


@bench_app.command("engine")
def engine(
    num_nodes: Annotated[int, typer.Option(help="Synthetic tree size.")] = 10_000,
) -> None:
    """Search bookkeeping speed with a zero-latency scripted policy: select+backup per second."""
    from search.bench import select_backup_rate

    rate = select_backup_rate(num_nodes=num_nodes)
    print(f"select+backup on a {num_nodes}-node tree: {rate:,.0f} ops/s ({1e6 / rate:.1f} µs each)")
