"""`ponder model` (the embedded checkpoint) and `ponder serve` (a recorded local vLLM server)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ponder.cli.common import console, fail
from search.protocols import PonderError


def model() -> None:
    """Prepare the embedded model (convert the packaged GGUF once) and print its path."""
    from models.embedded import embedded_checkpoint

    try:
        start = time.perf_counter()
        path = embedded_checkpoint()
    except PonderError as err:
        fail(err)
    console.print(f"embedded checkpoint: {path} ({time.perf_counter() - start:.1f} s)")


def serve(
    checkpoint: Annotated[Optional[Path], typer.Argument(help="HF checkpoint dir; default: the embedded model.")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the recorded server.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Show the recorded server.")] = False,
    port: Annotated[Optional[int], typer.Option(help="Port; default a free one.")] = None,
    kv_cache_gib: Annotated[Optional[int], typer.Option(
        help="KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE); default 2 (bf16) or 4 (float32).")] = None,
    omp_threads_bind: Annotated[str, typer.Option(help="Cores for the model's threads ('auto' = all).")] = "auto",
    enforce_eager: Annotated[bool, typer.Option(help="Skip compilation: ~25 s start instead of ~90 s.")] = True,
    max_model_len: Annotated[int, typer.Option(help="Context length in tokens.")] = 2048,
    replicas: Annotated[int, typer.Option(
        help="Servers of the checkpoint, each on its share of the machine (tensor_parallel_size GPUs each, "
             "or a split of the cores); recorded together.")] = 1,
    tensor_parallel_size: Annotated[int, typer.Option(help="GPUs each server shards the model over.")] = 1,
    gpu_memory_utilization: Annotated[Optional[float], typer.Option(
        help="Share of each GPU's memory a server may take (vLLM's default 0.9).")] = None,
    max_num_seqs: Annotated[Optional[int], typer.Option(help="Sequences a server batches at once.")] = None,
) -> None:
    """Start a local vLLM server (recorded, reused by later commands), or --status / --stop it."""
    from pydantic import ValidationError

    from models.replicas import check_placement, start_replicas
    from models.server import ServerSettings, server_statuses, start_server, stop_server
    from search.protocols import ConfigError

    try:
        if stop:
            console.print("stopped" if stop_server() else "no recorded server")
            return
        if status:
            found = server_statuses()
            if not found:
                console.print("no recorded server")
                raise typer.Exit(1)
            for st in found:
                r = st.record
                console.print(f"pid {r.pid}  {r.endpoint}  model {r.model}  healthy={st.healthy}  since "
                              f"{r.started_at}\ncheckpoint {r.checkpoint}\nlog {r.log_path}")
            return
        try:
            settings = ServerSettings(checkpoint=checkpoint, port=port, kv_cache_gib=kv_cache_gib,
                                      omp_threads_bind=omp_threads_bind, enforce_eager=enforce_eager,
                                      max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
                                      gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs)
        except ValidationError as e:
            first = e.errors()[0]
            raise ConfigError("--" + str(first["loc"][0]).replace("_", "-"), first.get("input"), first["msg"]) from None
        check_placement(replicas, settings, where="serve")
        live = server_statuses()
        if live:
            if (len(live) == replicas and all(st.healthy and st.record.checkpoint == settings.resolved_checkpoint()
                                              for st in live)):
                for st in live:
                    console.print(f"already serving {st.record.model} on {st.record.endpoint} (pid {st.record.pid})")
                return
            r = live[0].record
            fail(f"a recorded server is running: pid {r.pid} on {r.endpoint}, checkpoint {r.checkpoint}"
                 + (f" ({len(live)} replicas)" if len(live) > 1 else ""),
                 "stop it first with `ponder serve --stop` (a second one would take over the record and "
                 "leave it running unrecorded), or let the command that needs this checkpoint start its own")
        if replicas > 1 and port is not None:
            raise ConfigError("--port", port, "several replicas each take a free port: leave --port unset")
        if replicas == 1:
            recs = [start_server(settings)]
        else:
            recs = [rec for _, rec in start_replicas(replicas, settings, record=True, exit_with_parent=False)]
    except PonderError as err:
        fail(err)
    for rec in recs:
        console.print(f"serving {rec.model} on {rec.endpoint} (pid {rec.pid}, ready in {rec.startup_seconds:.1f} s)")
