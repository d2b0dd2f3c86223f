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
) -> None:
    """Start a local vLLM server (recorded, reused by later commands), or --status / --stop it."""
    from models.server import ServerSettings, server_status, start_server, stop_server

    try:
        if stop:
            console.print("stopped" if stop_server() else "no recorded server")
            return
        if status:
            st = server_status()
            if st is None:
                console.print("no recorded server")
                raise typer.Exit(1)
            r = st.record
            console.print(f"pid {r.pid}  {r.endpoint}  model {r.model}  healthy={st.healthy}  since {r.started_at}\n"
                          f"checkpoint {r.checkpoint}\nlog {r.log_path}")
            return
        settings = ServerSettings(checkpoint=checkpoint, port=port, kv_cache_gib=kv_cache_gib,
                                  omp_threads_bind=omp_threads_bind, enforce_eager=enforce_eager,
                                  max_model_len=max_model_len)
        rec = start_server(settings)
    except PonderError as err:
        fail(err)
    console.print(f"serving {rec.model} on {rec.endpoint} (pid {rec.pid}, ready in {rec.startup_seconds:.1f} s)")
