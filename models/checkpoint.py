"""Structural checks of a Hugging Face checkpoint directory, without importing torch.

Used by :mod:`models.embedded` to decide whether a converted checkpoint can be reused.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

REQUIRED_CONFIG_KEYS = ("model_type", "architectures", "vocab_size")


def structure_problem(path: Path) -> str | None:
    """Why the Hugging Face checkpoint at ``path`` looks unusable, or None: ``config.json``
    names the architecture, every safetensors file is whole, the tokenizer parses and has a
    chat template. Reads headers only (no torch)."""
    config = read_json(path / "config.json")
    if not isinstance(config, dict) or any(k not in config for k in REQUIRED_CONFIG_KEYS):
        return "config.json is missing, unreadable or incomplete"
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        return "no safetensors weights"
    for w in weights:
        problem = safetensors_problem(w)
        if problem:
            return f"{w.name}: {problem}"
    if not isinstance(read_json(path / "tokenizer.json"), dict):
        return "tokenizer.json is missing or unreadable"
    if not chat_template(path):
        return "the tokenizer has no chat template"
    return None


def chat_template(path: Path) -> str | None:
    """The checkpoint's chat template (``chat_template.jinja`` or ``tokenizer_config.json``)."""
    jinja = path / "chat_template.jinja"
    if jinja.is_file() and jinja.read_text(encoding="utf-8").strip():
        return jinja.read_text(encoding="utf-8")
    config = read_json(path / "tokenizer_config.json")
    if isinstance(config, dict) and isinstance(config.get("chat_template"), str):
        return config["chat_template"] or None
    return None


def safetensors_problem(path: Path) -> str | None:
    """Checks the header of a safetensors file and that its tensors exactly fill the file."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                return "truncated header"
            (header_len,) = struct.unpack("<Q", raw)
            if header_len <= 0 or 8 + header_len > size or header_len > 100 << 20:
                return "invalid header length"
            header = json.loads(f.read(header_len))
    except (OSError, ValueError) as e:
        return f"unreadable header ({e})"
    ends = [
        v["data_offsets"][1]
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    if not ends:
        return "no tensors"
    if 8 + header_len + max(ends) != size:
        return f"data size mismatch ({size} bytes on disk, header says {8 + header_len + max(ends)})"
    return None


def read_json(path: Path) -> Any:
    """The parsed JSON file, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
