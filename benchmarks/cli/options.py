"""What the bench commands share: their server options, the server they start, the header
every report opens with, and a config pointed at the bench's server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

Endpoint = Annotated[Optional[str], typer.Option(help="Server URL; default: a recorded or new embedded server.")]
BlockSize = Annotated[Optional[int], typer.Option(
    help="vLLM --block-size (prefix-cache granularity, tokens) for a server started here; default chosen for the machine (16 on a GPU, 32 on a CPU: its smallest).")]
KvCacheGib = Annotated[Optional[int], typer.Option(
    help="KV-cache GiB of a server started here; default ServerSettings' (2 in bf16, 4 in float32). The prefix "
         "cache keeps only what fits: size it for the tokens the problems at once keep live.")]
MaxInFlight = Annotated[int, typer.Option(help="Policy requests in flight at once (model.max_in_flight).")]
ConfigArg = Annotated[Optional[Path], typer.Argument(help="Run-config YAML; default: the bench's preset.")]


def server_settings(checkpoint: str | None, block_size: int | None, kv_cache_gib: int | None = None) -> Any:
    """The ServerSettings of a server the bench starts."""
    from models.server import ServerSettings

    settings = ServerSettings(checkpoint=Path(checkpoint) if checkpoint else None, kv_cache_gib=kv_cache_gib)
    # The setting itself, not an extra --block-size: vLLM refuses a flag given twice.
    return settings.model_copy(update={"block_size": block_size}) if block_size else settings


def stage_printer() -> Callable[[str], None]:
    """A printer of one line per stage of a long bench, with the seconds since the bench
    started, so a bench that takes minutes is never silent (a server start's phases come
    through it too, as ``on_progress``)."""
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", flush=True)

    return say


def print_header(title: str, server_desc: str, cfgs: list[Any]) -> None:
    """The bench's title, the machine, the server and each run config's measured settings."""
    from benchmarks.search_runs import machine_note

    print(f"== ponder bench {title}")
    print(f"machine: {machine_note()}")
    print(f"server:  {server_desc}")
    for cfg in cfgs:
        d = cfg.model_dump(mode="json")
        print(f"config {cfg.name}: " + json.dumps({k: d[k] for k in
              ("tasks", "search", "steps", "budget", "reward", "max_concurrent_problems", "temperature")}))
        print(f"  model.max_in_flight={cfg.model.max_in_flight}")


def for_run(cfg: Any, endpoint: str, max_in_flight: int, num_problems: int) -> Any:
    """The config pointed at the bench's server, every problem at once, a high in-flight cap."""
    from benchmarks.search_runs import override

    return override(cfg, {"model": {"endpoints": [endpoint], "max_in_flight": max_in_flight},
                          "max_concurrent_problems": num_problems})
