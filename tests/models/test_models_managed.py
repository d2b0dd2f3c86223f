"""ManagedServer (issue 8 §1): restarts keep the port and the record; only owned servers stop."""

from __future__ import annotations

import asyncio

import pytest

from models import managed
from models.records import ServerRecord
from models.server import ServerSettings


def record(pid: int, port: int = 8123) -> ServerRecord:
    return ServerRecord(pid=pid, port=port, model="m", checkpoint="/ckpt", started_at="t")


@pytest.fixture
def calls(monkeypatch):
    log: dict[str, list] = {"terminate": [], "stop": [], "start": []}
    pids = iter(range(200, 300))
    monkeypatch.setattr(managed, "terminate", lambda pid, timeout: log["terminate"].append(pid))
    monkeypatch.setattr(managed, "stop_server", lambda rec, timeout=20.0: log["stop"].append(rec.pid) or True)
    monkeypatch.setattr(managed, "port_in_use", lambda host, port: log.get("port_taken", False))
    log["replace"] = []
    monkeypatch.setattr(managed, "replace_record", lambda old, new: log["replace"].append((old.pid, new.pid)))

    def start(settings, *, record, exit_with_parent, on_progress=None):
        log["start"].append((settings.port, record, exit_with_parent))
        return ServerRecord(pid=next(pids), port=settings.port or 9999, model="m", checkpoint="/ckpt", started_at="t")

    monkeypatch.setattr(managed, "start_server", start)
    return log


def test_owned_server_restarts_on_its_port_and_is_stopped_at_the_end(calls):
    server = managed.ManagedServer(ServerSettings(), record(100), owned=True, recorded=False)
    endpoint = asyncio.run(server.restart())
    assert endpoint == "http://127.0.0.1:8123" and server.restarts == 1
    assert calls["terminate"] == [100]  # what was left of the dead server's process group
    assert calls["start"] == [(8123, False, True)]  # same port, not recorded, dies with the command
    server.close()
    assert calls["stop"] == [200]  # the restarted one, not the dead one


def test_recorded_server_restarts_recorded_and_outlives_the_command(calls):
    server = managed.ManagedServer(ServerSettings(), record(100), owned=False, recorded=True)
    asyncio.run(server.restart())
    assert calls["start"] == [(8123, False, False)]  # `ponder serve`'s server stays the user's
    assert calls["replace"] == [(100, 200)]  # recorded in the dead one's place
    server.close()
    assert calls["stop"] == []  # not stopped: this command did not start it


def test_a_taken_port_gets_a_new_one(calls):
    calls["port_taken"] = True
    server = managed.ManagedServer(ServerSettings(), record(100), owned=True, recorded=False)
    assert asyncio.run(server.restart()) == "http://127.0.0.1:9999"
    assert calls["start"] == [(None, False, True)]


def test_a_server_this_process_started_is_restartable_where_its_endpoint_is_handed_on(calls, monkeypatch):
    """A loop stage gives its servers to its runs as plain endpoints: a run must still restart
    one that dies (issue 8 §1: a server ponder started is restarted), not wait for it as if it
    were external; a truly external endpoint gets no restart function."""
    from ponder.config import ModelConfig
    from ponder.engine import model_endpoints

    monkeypatch.setattr(managed, "server_status", lambda: None)
    with managed.ensure_server("/ckpt") as server:
        mine, other = server.endpoint, "http://10.0.0.9:8000"
        with model_endpoints(ModelConfig(endpoints=[mine, other], model="m")) as served:
            assert set(served.restart_fns) == {mine}
            assert asyncio.run(served.restart_fns[mine]()) == mine and server.restarts == 1
    assert managed.own_restart_fns([mine]) == {}  # stopped with its block: nothing to restart
