"""What a local vLLM server runs with: its settings, command line and environment.

See :mod:`models.server` for starting, recording and stopping it.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.paths import cache_dir

_BIND_RE = re.compile(r"^(nobind|\d+(-\d+)?(,\d+(-\d+)?)*(\|\d+(-\d+)?(,\d+(-\d+)?)*)*)$")


class ServerSettings(BaseModel):
    """How to run a local vLLM server. Unset ``checkpoint`` means the embedded model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: Path | None = Field(
        None, description="Hugging Face checkpoint directory; None: the embedded SmolLM2-135M."
    )
    served_model_name: str | None = Field(
        None, description="Model name clients send; default: the checkpoint directory's name."
    )
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int | None = Field(
        None, ge=1, le=65535, description="TCP port; None picks a free one."
    )
    max_model_len: int = Field(2048, ge=16, description="Context length in tokens.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] | None = Field(
        None,
        description="Weight/activation dtype (vLLM --dtype); None: chosen for this machine "
        "(see machine_dtype): bfloat16 with AVX-512 or a GPU, float32 on other CPUs.",
    )
    enforce_eager: bool = Field(
        True, description="Skip graph compilation: ready in ~25 s instead of ~90 s on CPU."
    )
    kv_cache_gib: int | None = Field(
        None,
        ge=1,
        description="KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE); None: 2 GiB in a 16-bit dtype, 4 in "
        "float32 (the same ~93k tokens of SmolLM2-135M: float32 halves what a GiB holds).",
    )
    block_size: int | None = Field(
        None,
        ge=1,
        description="KV-cache block size in tokens (--block-size); the prefix cache shares whole blocks "
        "only, so each request recomputes its prompt's last partial block. None: chosen for the machine "
        "(machine_block_size): 16 on a GPU, 32 on a CPU (the CPU backend takes multiples of 32 only; its "
        "own default, 128, is longer than most search prompts: 32 gave a 68% vs 18% hit rate in `ponder "
        "bench throughput`).",
    )
    omp_threads_bind: str = Field(
        "auto",
        description="VLLM_CPU_OMP_THREADS_BIND: 'auto' = all usable cores (e.g. '0-1'), "
        "'nobind', or a core list such as '0-3' or '0,2'.",
    )
    tensor_parallel_size: int = Field(
        1, ge=1, description="GPUs one server shards the model over (vLLM --tensor-parallel-size); GPU only.")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="Share of each GPU's memory vLLM may take (weights + KV cache; "
        "--gpu-memory-utilization); None: vLLM's default (0.9). Ignored on CPU.")
    max_num_seqs: int | None = Field(
        None, ge=1, description="Sequences the server batches at once (--max-num-seqs); None: vLLM's default.")
    cuda_visible_devices: str | None = Field(
        None, description="CUDA_VISIBLE_DEVICES of the server (e.g. '2,3'): the GPUs of one replica; "
        "None: inherited. Set per replica by models.replicas.")
    runner: Literal["auto", "generate", "pooling"] = Field(
        "auto", description="vLLM --runner; 'pooling' for reward/classifier models."
    )
    extra_args: tuple[str, ...] = Field(
        (), description="Further arguments appended to `vllm serve`, e.g. ('--max-num-seqs', '128')."
    )
    startup_timeout_s: float = Field(
        300.0, gt=0, description="Seconds to wait for /health before giving up."
    )

    def resolved_dtype(self) -> str:
        """The dtype the server runs: ``dtype``, or the machine's (:func:`machine_dtype`)."""
        return self.dtype or machine_dtype()

    def resolved_kv_cache_gib(self) -> int:
        """The KV-cache GiB the server gets: ``kv_cache_gib``, or 2 GiB per 16 bits of the dtype."""
        if self.kv_cache_gib is not None:
            return self.kv_cache_gib
        return 4 if self.resolved_dtype() == "float32" else 2

    def resolved_block_size(self) -> int:
        """The block size the server runs: ``block_size``, or the machine's (:func:`machine_block_size`)."""
        return self.block_size or machine_block_size()

    def resolved_checkpoint(self) -> str:
        """The checkpoint a server of these settings serves, as its record names it: ``checkpoint``
        resolved, or the embedded model's directory (not prepared here)."""
        if self.checkpoint is None:
            from models.embedded import default_checkpoint_dir

            return str(default_checkpoint_dir())
        return str(Path(self.checkpoint).expanduser().resolve())

    @field_validator("omp_threads_bind")
    @classmethod
    def _check_bind(cls, v: str) -> str:
        if v != "auto" and not _BIND_RE.match(v):
            raise ValueError(f"omp_threads_bind={v!r}: expected 'auto', 'nobind' or e.g. '0-3'")
        return v

    @field_validator("extra_args", mode="before")
    @classmethod
    def _check_extra(cls, v: object) -> object:
        if isinstance(v, str):
            raise ValueError(f"extra_args={v!r}: expected a list of arguments, not one string")
        return v


def usable_cores() -> list[int]:
    """The CPU cores this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def bind_list(cores: list[int]) -> str:
    """Cores as a vLLM bind list: ``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    ranges: list[str] = []
    start = prev = cores[0]
    for c in [*cores[1:], None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        ranges.append(f"{start}-{prev}" if prev != start else f"{start}")
        if c is not None:
            start = prev = c
    return ",".join(ranges)


def all_cores() -> str:
    """The cores this process may run on, as a vLLM bind list (e.g. ``"0-1"``)."""
    return bind_list(usable_cores())


CPU_BLOCK_MULTIPLE = 32
"""vLLM-CPU's attention backend accepts block sizes that are multiples of this only (vLLM 0.32)."""


def on_gpu() -> bool:
    """Whether this machine has a CUDA GPU (``/dev/nvidia0``)."""
    return Path("/dev/nvidia0").exists()


def machine_block_size(gpu: bool | None = None) -> int:
    """The KV block size for tree search here: 16 on a GPU (vLLM's GPU default), 32 on a CPU, the
    smallest its backend accepts. Smaller blocks leave a shorter uncached tail per request: measured
    with 32, one server's prefix-cache hit rate on `ponder bench replicas`' MCTS workload (~125-token
    prompts) was 87.9 %, nearly all the misses that tail (15.1 tokens computed per sequence)."""
    return 16 if (on_gpu() if gpu is None else gpu) else CPU_BLOCK_MULTIPLE


def machine_dtype(cpu_flags: set[str] | None = None, gpu: bool | None = None) -> str:
    """The dtype vLLM serves fastest here: ``bfloat16`` on a CUDA GPU or a CPU with AVX-512,
    ``float32`` on other CPUs, where vLLM's bf16 kernels fall back to slow paths (measured on a
    2-core AVX2 EPYC, SmolLM2-135M, 32 concurrent requests: 45.6 generated tok/s in bf16, 210.8 in
    float32; at 1 request both ~22). Arguments override what is read from the machine (tests)."""
    if gpu is None:
        gpu = on_gpu()
    flags = machine_cpu_flags() if cpu_flags is None else cpu_flags
    return "bfloat16" if gpu or "avx512f" in flags else "float32"


def machine_cpu_flags() -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def server_command(settings: ServerSettings, checkpoint: Path, port: int) -> list[str]:
    """The command line that runs vLLM's ``serve`` for ``settings`` (no environment)."""
    cmd = [
        sys.executable, "-m", "models.launcher", "serve", str(checkpoint),
        "--host", settings.host,
        "--port", str(port),
        "--served-model-name", served_name(settings, checkpoint),
        "--max-model-len", str(settings.max_model_len),
        "--dtype", settings.resolved_dtype(),
        "--enable-prompt-tokens-details",
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    if settings.enforce_eager:
        cmd.append("--enforce-eager")
    cmd += ["--block-size", str(settings.resolved_block_size())]
    if settings.runner != "auto":
        cmd += ["--runner", settings.runner]
    if settings.tensor_parallel_size > 1:
        cmd += ["--tensor-parallel-size", str(settings.tensor_parallel_size)]
    if settings.gpu_memory_utilization is not None:
        cmd += ["--gpu-memory-utilization", str(settings.gpu_memory_utilization)]
    if settings.max_num_seqs is not None:
        cmd += ["--max-num-seqs", str(settings.max_num_seqs)]
    cmd += list(settings.extra_args)
    return cmd


def served_name(settings: ServerSettings, checkpoint: Path) -> str:
    return settings.served_model_name or checkpoint.name


def server_env(settings: ServerSettings) -> dict[str, str]:
    """The environment the server process runs with (this process's, plus vLLM settings)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    bind = all_cores() if settings.omp_threads_bind == "auto" else settings.omp_threads_bind
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_CPU_KVCACHE_SPACE=str(settings.resolved_kv_cache_gib()),
        VLLM_CPU_OMP_THREADS_BIND=bind,
        VLLM_CACHE_ROOT=str(cache_dir() / "vllm"),
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",
    )
    if settings.cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = settings.cuda_visible_devices
    return env
