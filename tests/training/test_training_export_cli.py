"""`ponder export RUN_DIR --format ...` on a hand-built run directory."""

from __future__ import annotations

from pathlib import Path

import datasets
from run_builder import standard_run
from typer.testing import CliRunner

from ponder.cli.main import app


def test_ponder_export_writes_the_named_formats(tmp_path: Path) -> None:
    standard_run(tmp_path / "run")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--format", "prm", "--format", "value",
                                      "--generator", "math_shepherd", "--out", str(out)])
    assert result.exit_code == 0, result.output
    prm = datasets.load_from_disk(str(out / "prm_math_shepherd"))
    assert prm.column_names[:3] == ["prompt", "completions", "labels"] and len(prm) > 0
    assert (out / "value_math_shepherd" / "README.md").exists() and not (out / "sft").exists()


def test_ponder_export_names_a_bad_format(tmp_path: Path) -> None:
    standard_run(tmp_path / "run")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--format", "nope"])
    assert result.exit_code == 2 and "nope" in result.output
