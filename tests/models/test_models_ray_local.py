"""A local Ray that ponder starts ends with its owner (models.ray_local): the watcher on
scripted process trees, and a real ``ray.init`` in a process that is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import models
from models.processes import children_of, cmdline, process_identity
from models.ray_local import start_watcher

ROOT = str(Path(models.__file__).resolve().parent.parent)

# A "root" (a node process ray.init started): a child that ignores SIGTERM (as Ray's agents
# outlive their raylet) and a grandchild under it (a worker's own child, e.g. a vLLM server).
ROOT_PROGRAM = '''
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(grandchild.pid, flush=True)
time.sleep(300)
"""], stdout=subprocess.PIPE, text=True)
print(child.pid, child.stdout.readline().strip(), flush=True)
time.sleep(float(sys.argv[1]))
'''


def gone_within(idents, seconds: float) -> list:
    """The identities still alive after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        left = [i for i in idents if process_identity(i[0]) == i]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def scripted_tree(root_lives_s: float):
    """An owner (sleeps), a root under the test with a stubborn child and a grandchild."""
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    root = subprocess.Popen([sys.executable, "-c", ROOT_PROGRAM, str(root_lives_s)], stdout=subprocess.PIPE, text=True)
    child, grandchild = map(int, root.stdout.readline().split())
    return owner, root, child, grandchild


def cleanup(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_the_owners_death_ends_the_roots_and_their_children_only():
    owner, root, child, grandchild = scripted_tree(300)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        watcher = start_watcher(owner.pid, [root.pid], poll_s=0.1, grace_s=0.5)
        assert watcher is not None
        idents = [process_identity(p) for p in (root.pid, child, watcher)]
        time.sleep(0.5)
        assert gone_within(idents, 0) == idents  # nothing ended while the owner lives
        owner.kill()
        owner.wait()
        root_proc_done = time.monotonic()
        assert gone_within(idents[:2], 5) == []  # the root, and its child through SIGKILL
        assert time.monotonic() - root_proc_done < 4
        assert gone_within(idents[2:], 5) == []  # the watcher exits when done
        # a grandchild is its parent's business (a vLLM server has its own guardian); a bystander is not ours
        assert process_identity(grandchild) is not None and bystander.poll() is None
    finally:
        cleanup(owner.pid, root.pid, child, grandchild, bystander.pid)
        root.wait()
        bystander.wait()


def test_when_the_roots_end_with_the_owner_alive_their_leftovers_are_ended():
    """``ray.shutdown`` in a command that goes on: the watcher ends what is left and exits."""
    owner, root, child, grandchild = scripted_tree(1.0)
    try:
        watcher = start_watcher(owner.pid, [root.pid], poll_s=0.1, grace_s=0.5)
        assert gone_within([process_identity(child), process_identity(watcher)], 8) == []
        assert owner.poll() is None  # the owner is never signalled
    finally:
        cleanup(owner.pid, root.pid, child, grandchild)
        owner.wait()
        root.wait()


def test_nothing_to_watch_starts_no_watcher():
    assert start_watcher(os.getpid(), []) is None


KILLED_DRIVER = '''
import time
from models.processes import children_of, cmdline
from models.ray_local import ray_roots, start_local_ray
watcher = start_local_ray(num_cpus=1, include_dashboard=False, log_to_driver=False,
                          object_store_memory=80 * 1024 * 1024)
roots = ray_roots(__import__("os").getpid())
deadline = time.monotonic() + 60
while time.monotonic() < deadline:  # the raylet starts its agents after ray.init returns
    names = [(cmdline(p) or [b""])[0].strip() for p in children_of(roots) or []]
    if sum(n.startswith(b"ray::") and n.endswith(b"Agent") for n in names) >= 2:
        break
    time.sleep(0.2)
time.sleep(1.0)  # the watcher has looked at least once since
print(watcher, *roots, flush=True)
time.sleep(300)
'''


def test_a_sigkilled_process_leaves_none_of_its_local_ray():
    """Without the watcher, Ray's dashboard and runtime-env agents outlived a SIGKILLed driver
    by about a minute (their raylet's death reported to a dead GCS first)."""
    pytest.importorskip("ray")
    driver = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    line = driver.stdout.readline()
    assert line, "the driver did not start Ray"
    watcher, *roots = map(int, line.split())
    assert roots and watcher
    tree = roots + (children_of(roots) or [])
    names = {p: " ".join(Path(a.decode(errors="replace").strip()).name for a in (cmdline(p) or [])[:3]) for p in tree}
    roots_run = " ".join(names[p] for p in roots)
    for program in ("gcs_server", "raylet", "log_monitor.py", "monitor.py", "dashboard.py"):
        assert program in roots_run, names  # every node process ray.init started is a root
    assert {"ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= {names[p].split()[0] for p in tree}, names
    idents = [i for i in (process_identity(p) for p in [*tree, watcher]) if i is not None]
    try:
        driver.kill()
        driver.wait()
        left = gone_within(idents, 20)
        assert left == [], [names.get(p, "watcher") for p, _ in left]
    finally:
        for pid, _ in gone_within(idents, 0):  # only what this test's driver started
            cleanup(pid)
