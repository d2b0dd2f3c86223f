"""A server's guardian (models.guardian) on real process trees, through the launcher's own
``main``: vLLM is replaced by a fake ``vllm`` package whose CLI starts an "engine core" that
ignores SIGTERM (as vLLM's was seen to) and a "worker" under it, then serves until killed.

Whatever ends the server (Ray's kill of its actor, a SIGKILL of the leader alone, the death of
the process that owns it), no member of its process group may be left; an orderly stop is not
held up by the guardian."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import models
from models.processes import group_members, terminate_group

ROOT = str(Path(models.__file__).resolve().parent.parent)

FAKE_CLI = '''
import os, subprocess, sys, time

def main():
    subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "engine.py")])
    time.sleep(300)
'''
FAKE_ENGINE = '''
import os, signal, subprocess, sys, time
if os.environ.get("FAKE_STUBBORN") == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if sys.argv[1:] != ["worker"]:
    worker = subprocess.Popen([sys.executable, __file__, "worker"])
    path = os.environ["FAKE_PIDS"]
    with open(path + ".tmp", "w") as f:
        f.write(f"{os.getppid()} {os.getpid()} {worker.pid}")
    os.replace(path + ".tmp", path)
time.sleep(300)
'''
LAUNCH = ("import sys, models.guardian as g; g.GRACE_S, g.POLL_S = float(sys.argv[1]), 0.05; "
          "from models.launcher import main; main(sys.argv[2:])")


def launcher(tmp_path: Path, *, stubborn: bool, grace_s: float) -> tuple[list[str], dict[str, str]]:
    """The command and environment of ``models.launcher.main`` over the fake vLLM."""
    cli = tmp_path / "fake" / "vllm" / "entrypoints" / "cli"
    cli.mkdir(parents=True, exist_ok=True)
    for folder in (cli, cli.parent, cli.parent.parent):
        (folder / "__init__.py").touch()
    (cli / "main.py").write_text(FAKE_CLI)
    (cli / "engine.py").write_text(FAKE_ENGINE)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'fake'}{os.pathsep}{ROOT}",
           "FAKE_PIDS": str(tmp_path / "pids"), "FAKE_STUBBORN": "1" if stubborn else "0"}
    env.pop("PONDER_EXIT_WITH_PARENT", None)
    return [sys.executable, "-c", LAUNCH, str(grace_s), "serve", "fake"], env


def tree(tmp_path: Path, timeout: float = 60.0) -> tuple[int, int, int]:
    """(leader, engine, worker) once the fake engine has written them."""
    path = tmp_path / "pids"
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "the fake server never started its engine"
        time.sleep(0.05)
    leader, engine, worker = map(int, path.read_text().split())
    return leader, engine, worker


def left_after(group: int, seconds: float) -> list[int]:
    """The live members of ``group`` once it has emptied or ``seconds`` have passed (the
    survivors are SIGKILLed, so a failing test leaves nothing behind)."""
    deadline = time.monotonic() + seconds
    while (members := group_members(group) or []) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in members:
        os.kill(pid, signal.SIGKILL)
    return members


@pytest.fixture(autouse=True)
def _linux_only() -> None:
    if group_members(os.getpgrp()) is None:
        pytest.skip("needs /proc to list a process group")


def test_a_server_killed_alone_takes_its_engine_with_it(tmp_path):
    """Ray SIGKILLs a dead actor's direct children: the leader goes, its engine core (which
    ignores SIGTERM) and worker must not live on as orphans."""
    cmd, env = launcher(tmp_path, stubborn=True, grace_s=1.0)
    server = subprocess.Popen(cmd, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        leader, engine, worker = tree(tmp_path)
        assert leader == server.pid and {engine, worker} <= set(group_members(leader) or [])
        server.kill()
        server.wait(timeout=10)
        assert left_after(leader, 20) == []
    finally:
        server.kill()


@pytest.mark.parametrize("owner_exits", ["before the engine starts", "while it serves"])
def test_a_server_whose_owner_died_ends_its_group(tmp_path, owner_exits):
    """A server started with ``exit_with_parent`` ends, engine and all, once the process that
    started it is gone (killed without cleaning up), even if it went before the guard began."""
    cmd, env = launcher(tmp_path, stubborn=True, grace_s=1.0)
    wait = owner_exits == "while it serves"
    owner = (
        "import os, subprocess, sys, time\n"
        "env = dict(os.environ, PONDER_EXIT_WITH_PARENT=str(os.getpid()))\n"
        f"p = subprocess.Popen({cmd!r}, env=env, start_new_session=True, stdin=subprocess.DEVNULL)\n"
        "print(p.pid, flush=True)\n"
        f"while {wait!r} and not os.path.exists(env['FAKE_PIDS']): time.sleep(0.05)\n"
    )
    done = subprocess.run([sys.executable, "-c", owner], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    leader = int(done.stdout.split()[0])
    if wait:
        assert tree(tmp_path)[0] == leader
    assert left_after(leader, 30) == []


def test_an_orderly_stop_is_not_held_up_by_the_guardian(tmp_path):
    """SIGTERM to the group: the server and its engine exit, and the guardian with them, long
    before its grace (60 s) or the stop's SIGKILL (30 s)."""
    cmd, env = launcher(tmp_path, stubborn=False, grace_s=60.0)
    server = subprocess.Popen(cmd, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        leader, _, _ = tree(tmp_path)
        guardians = [p for p in group_members(leader) or [] if p != leader and b"models.guardian" in
                     Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(guardians) == 1  # a member of the server's group
        start = time.monotonic()
        terminate_group(leader, timeout=30)
        assert time.monotonic() - start < 20
        assert left_after(leader, 0) == []
    finally:
        server.kill()


def test_a_killed_ray_actor_leaves_no_server_process(tmp_path):
    """The Ray replica's path: an actor starts the server in a group of its own, tied to the
    actor (as ``models.ray_replicas.vllm_start`` does), and ``ray.kill`` ends the actor."""
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cmd, env = launcher(tmp_path, stubborn=True, grace_s=1.0)
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
                 object_store_memory=80 * 1024 * 1024)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actor class, for Ray's workers
    try:
        actor = ray.remote(_Owner).options(num_cpus=0, max_restarts=0).remote(cmd, env)
        leader = ray.get(actor.server.remote(), timeout=120)
        assert tree(tmp_path)[0] == leader
        ray.kill(actor, no_restart=True)
        assert left_after(leader, 30) == []
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        if started:
            ray.shutdown()


class _Owner:
    """A Ray actor that starts a server the way models.server does for ``exit_with_parent``."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        env = {**env, "PONDER_EXIT_WITH_PARENT": str(os.getpid())}
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdin=subprocess.DEVNULL)

    def server(self) -> int:
        return self.proc.pid
