"""model.replicas / routing / cluster (issue 26): refused at load when they cannot work, and
the engine starts the replicas and routes as configured."""

from __future__ import annotations

import contextlib

import pytest
import yaml

from ponder.config import ModelConfig, parse_run_config
from search.protocols import ConfigError

TASKS = {"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 1}


@pytest.mark.parametrize(("model", "field", "fix"), [
    ({"replicas": 4096}, "model.replicas", "set model.replicas <="),
    ({"replicas": 2, "endpoints": ["http://h:1"]}, "model.replicas", "remove model.endpoints or model.replicas"),
    ({"cluster": {"kind": "ray", "replicas": 2}, "replicas": 2}, "model.replicas", "model.cluster.replicas"),
])
def test_the_cli_refuses_replicas_that_cannot_work_with_exit_2(tmp_path, monkeypatch, model, field, fix):
    from typer.testing import CliRunner

    import ponder.run
    from ponder.cli.main import app

    monkeypatch.setattr(ponder.run, "open_engine", lambda *a, **k: pytest.fail("an engine was opened"))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "out"), "tasks": TASKS, "model": model}))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"invalid {field}=" in text and fix in text, text
    assert not (tmp_path / "out").exists()


def test_the_server_knobs_reach_the_servers_settings():
    cfg = parse_run_config({"model": {"replicas": 2, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.8,
                                      "max_num_seqs": 128, "dtype": "bfloat16", "kv_cache_gib": 1}})
    s = cfg.model.server_settings()
    assert (s.tensor_parallel_size, s.gpu_memory_utilization, s.max_num_seqs, s.dtype, s.kv_cache_gib) == \
        (2, 0.8, 128, "bfloat16", 1)
    with pytest.raises(ConfigError) as e:
        parse_run_config({"model": {"routing": "nearest"}})
    assert e.value.field == "model.routing"


def test_the_engine_starts_the_replicas_and_routes_as_configured(monkeypatch):
    import ponder.engine as engine
    from models.records import ServerRecord
    from models.server import ServerSettings

    asked = []

    class Server:
        def __init__(self, port):
            self.record = ServerRecord(pid=port, port=port, model="m", checkpoint="/ckpt", started_at="t")
            self.settings = ServerSettings()
            self.endpoint = self.record.endpoint

        async def restart(self):
            return self.endpoint

    @contextlib.contextmanager
    def ensure_replicas(n, settings, *, on_progress=None):
        asked.append((n, settings.max_num_seqs))
        yield [Server(9001), Server(9002)]

    monkeypatch.setattr(engine, "ensure_replicas", ensure_replicas)
    with engine.model_endpoints(ModelConfig(replicas=2, max_num_seqs=64)) as served:
        assert asked == [(2, 64)]
        assert served.endpoints == ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
        assert set(served.restart_fns) == set(served.endpoints)  # both restarted on death
