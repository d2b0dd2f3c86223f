"""Process liveness and group termination on a real child process (no server)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from models.processes import cmdline, group_running, pid_running, process_identity, terminate_group


def test_a_process_group_is_seen_running_then_terminated():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        assert pid_running(child.pid) and group_running(child.pid)
        deadline = time.monotonic() + 30  # until the forked child has exec'd (slow on a loaded machine)
        while not any(b"time.sleep(60)" in part for part in cmdline(child.pid) or []):
            assert time.monotonic() < deadline, cmdline(child.pid)
            time.sleep(0.05)
        terminate_group(child.pid, timeout=5.0)
        child.wait(timeout=5)
        assert not pid_running(child.pid) and not group_running(child.pid)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_zombie_counts_as_exited():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    for _ in range(100):  # exited but not reaped: a zombie until wait()
        if not pid_running(child.pid):
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert not pid_running(child.pid)
    child.wait()


def test_process_identity_is_pid_and_start_time_of_a_live_process_only():
    me = process_identity(os.getpid())
    assert me is not None and me[0] == os.getpid() and me == process_identity(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_identity(child.pid) is None
