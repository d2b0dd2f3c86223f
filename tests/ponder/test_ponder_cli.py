"""The command line's shape: every command registered once, one error exit with the documented codes."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from ponder.cli.common import fail
from ponder.cli.main import app
from search.protocols import ConfigError, EngineFault, Interrupted

COMMANDS = ["model", "serve", "solve", "run", "view", "prove", "label", "export", "train", "loop", "bench"]
BENCHES = ["server", "engine", "throughput", "compare", "accuracy", "flat", "treepo", "prove", "label", "parallel",
           "view", "prm", "replicas", "guided", "scale"]


def test_every_command_and_bench_answers_help():
    from benchmarks.cli import bench_app

    assert [c.name or c.callback.__name__ for c in app.registered_commands] + ["bench"] == COMMANDS
    assert sorted(c.name for c in bench_app.registered_commands) == sorted(BENCHES)
    runner = CliRunner()
    for args in [[c] for c in COMMANDS] + [["bench", b] for b in BENCHES]:
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage:" in result.output


@pytest.mark.parametrize(("err", "code", "word"), [
    (ConfigError("search.beam_width", 0, "must be >= 1"), 2, "error:"),
    ("no Chromium here", 2, "error:"),
    (EngineFault("http://h:1", "stayed down after a restart"), 3, "error:"),
    (Interrupted("SIGINT"), 130, "stopped:"),
    (Interrupted("SIGTERM"), 143, "stopped:"),
    (KeyboardInterrupt(), 130, "stopped:"),
])
def test_fail_exits_with_the_documented_code(err, code, word, capsys):
    with pytest.raises(typer.Exit) as exit_:
        fail(err, "re-run the same command to resume")
    assert exit_.value.exit_code == code
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith(word) and out.endswith("re-run the same command to resume")


def test_fail_prints_brackets_in_a_message_as_text(capsys):
    """rich would take ``[ray]`` in ``pip install -e '.[ray]'`` for markup and drop it."""
    with pytest.raises(typer.Exit):
        fail(ConfigError("model.cluster", "ray", "Ray is not installed: pip install -e '.[ray]'"), "see [docs]")
    out = " ".join(capsys.readouterr().out.split())
    assert "pip install -e '.[ray]'" in out and out.endswith("see [docs]")
