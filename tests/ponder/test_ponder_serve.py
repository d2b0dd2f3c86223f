"""`ponder serve` with a server already recorded: reuse the same one, refuse another before starting it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import models.server as server_mod
from models.records import ServerRecord
from models.server import ServerStatus
from ponder.cli.main import app


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """A live, healthy recorded server of checkpoint ``tmp_path/ckpt-a``; starting another fails the test."""
    ckpt = tmp_path / "ckpt-a"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    rec = ServerRecord(pid=4242, port=8123, model="ckpt-a", checkpoint=str(ckpt.resolve()), started_at="t")
    monkeypatch.setattr(server_mod, "server_statuses", lambda: [ServerStatus(record=rec, healthy=True)])

    def no_start(*_a, **_k):
        raise AssertionError("a second server was started")

    monkeypatch.setattr(server_mod, "start_server", no_start)
    return ckpt


def test_serve_refuses_a_second_server_while_one_is_recorded(recorded, tmp_path):
    other = tmp_path / "ckpt-b"
    other.mkdir()
    (other / "config.json").write_text("{}")
    result = CliRunner().invoke(app, ["serve", str(other)])
    assert result.exit_code == 2, result.output
    assert "pid 4242" in result.output and "ponder serve --stop" in result.output


def test_serve_of_the_recorded_checkpoint_reuses_it(recorded):
    result = CliRunner().invoke(app, ["serve", str(recorded)])
    assert result.exit_code == 0, result.output
    assert "already serving ckpt-a on http://127.0.0.1:8123 (pid 4242)" in " ".join(result.output.split())


def test_serve_with_other_replica_count_is_refused(recorded):
    result = CliRunner().invoke(app, ["serve", str(recorded), "--replicas", "2"])
    assert result.exit_code == 2, result.output
    assert "a recorded server is running" in " ".join(result.output.split())
