"""Replicas on one machine (issue 26 §1): each its share of GPUs or cores, refused when they
cannot fit, recorded together by `ponder serve --replicas`, restarted in place."""

from __future__ import annotations

import pytest

from models import records, replicas, server, server_settings
from models.records import ServerRecord
from models.server import ServerSettings, server_command, server_env
from search.protocols import ConfigError


def test_gpu_replicas_take_tensor_parallel_size_gpus_each():
    plan = replicas.replica_settings(2, ServerSettings(tensor_parallel_size=2), gpus=["0", "1", "2", "3"], cores=[0])
    assert [s.cuda_visible_devices for s in plan] == ["0,1", "2,3"]
    env = server_env(plan[1])
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    cmd = server_command(plan[1].model_copy(update={"gpu_memory_utilization": 0.8, "max_num_seqs": 64}),
                         __import__("pathlib").Path("/ckpt"), 8000)
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "2"
    assert cmd[cmd.index("--gpu-memory-utilization") + 1] == "0.8"
    assert cmd[cmd.index("--max-num-seqs") + 1] == "64"


def test_cpu_replicas_split_the_cores():
    plan = replicas.replica_settings(2, ServerSettings(), gpus=[], cores=[0, 1, 2, 3, 4])
    assert [s.omp_threads_bind for s in plan] == ["0-2", "3-4"]
    assert server_env(plan[0])["VLLM_CPU_OMP_THREADS_BIND"] == "0-2"
    assert replicas.replica_settings(2, ServerSettings(), gpus=[], cores=[0, 1])[1].omp_threads_bind == "1"
    one = ServerSettings(omp_threads_bind="0")
    assert replicas.replica_settings(1, one, gpus=[], cores=[0, 1]) == [one]


@pytest.mark.parametrize(("n", "settings", "gpus", "cores", "field"), [
    (3, ServerSettings(tensor_parallel_size=2), ["0", "1", "2", "3"], [0], "model.replicas"),
    (1, ServerSettings(tensor_parallel_size=8), ["0", "1"], [0], "model.tensor_parallel_size"),
    (1, ServerSettings(tensor_parallel_size=2), [], [0, 1], "model.tensor_parallel_size"),
    (3, ServerSettings(), [], [0, 1], "model.replicas"),
    (2, ServerSettings(omp_threads_bind="0-1"), [], [0, 1], "model.omp_threads_bind"),
    (1, ServerSettings(block_size=16), [], [0, 1], "model.block_size"),
])
def test_a_placement_that_cannot_work_is_refused_naming_the_field(n, settings, gpus, cores, field):
    with pytest.raises(ConfigError) as e:
        replicas.check_placement(n, settings, gpus=gpus, cores=cores)
    assert e.value.field == field


def test_block_size_is_chosen_for_the_machine_and_reaches_the_command(monkeypatch, tmp_path):
    """16 on a GPU (vLLM's GPU default), 32 on a CPU (the smallest its backend takes); a GPU
    placement keeps a block size a CPU would refuse."""
    assert (server_settings.machine_block_size(gpu=True), server_settings.machine_block_size(gpu=False)) == (16, 32)
    monkeypatch.setattr(server_settings, "on_gpu", lambda: False)
    cmd = server_command(ServerSettings(), tmp_path, 1)
    assert cmd[cmd.index("--block-size") + 1] == "32"
    cmd = server_command(ServerSettings(block_size=64), tmp_path, 1)
    assert cmd[cmd.index("--block-size") + 1] == "64"
    replicas.check_placement(1, ServerSettings(block_size=16), gpus=["0"], cores=[0])
    replicas.check_placement(1, ServerSettings(block_size=64), gpus=[], cores=[0])


def test_visible_gpus_read_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert replicas.visible_gpus() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert replicas.visible_gpus() == []


def rec(pid: int, port: int) -> ServerRecord:
    return ServerRecord(pid=pid, port=port, model="m", checkpoint="/ckpt", started_at="t")


def test_replicas_are_recorded_together_and_a_restart_replaces_its_own_record(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    a, b, b2 = rec(1, 8001), rec(2, 8002), rec(3, 8003)
    records.record_servers([a, b])
    assert records.recorded_servers() == [a, b]
    records.replace_record(b, b2)
    assert records.recorded_servers() == [a, b2]
    records.clear_record(a)
    assert records.recorded_servers() == [b2]
    records.write_record(a)  # one server recorded as before: a plain record
    assert records.recorded_servers() == [a]


def test_stop_server_stops_every_recorded_replica(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    stopped = []
    monkeypatch.setattr(server, "is_alive", lambda r: True)
    monkeypatch.setattr(server, "terminate", lambda pid, timeout: stopped.append(pid))
    records.record_servers([rec(1, 8001), rec(2, 8002)])
    assert server.stop_server() is True
    assert stopped == [1, 2] and records.recorded_servers() == []


def test_ensure_replicas_starts_each_share_and_stops_them(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    started, stopped = [], []
    monkeypatch.setattr(replicas, "replica_settings",
                        lambda n, s: [s.model_copy(update={"omp_threads_bind": str(i)}) for i in range(n)])

    def start(settings, *, record, exit_with_parent, on_progress=None):
        started.append((settings.omp_threads_bind, record, exit_with_parent))
        return rec(100 + len(started), 9000 + len(started))

    monkeypatch.setattr(replicas, "start_server", start)
    monkeypatch.setattr("models.managed.stop_server", lambda r, timeout=20.0: stopped.append(r.pid))
    from models.managed import own_restart_fns

    with replicas.ensure_replicas(2, ServerSettings(checkpoint=tmp_path)) as servers:
        assert sorted(started) == [("0", False, True), ("1", False, True)]
        assert len({s.endpoint for s in servers}) == 2
        assert set(own_restart_fns([s.endpoint for s in servers])) == {s.endpoint for s in servers}
    assert sorted(stopped) == [101, 102]
