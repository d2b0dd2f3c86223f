"""WorkerPool: hard timeouts, worker replacement, async use, the worker sandbox."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from verifiers.pool import PoolConfig, WorkerCrashed, WorkerPool, WorkerTimeout, shared_pool
from verifiers.sandbox import SandboxViolation


# Module-level so that spawned workers can unpickle them by reference.
def add(a: int, b: int) -> int:
    return a + b


def sleep_then_return(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def worker_pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def write_file(path: str) -> str:
    with open(path, "w") as handle:
        handle.write("x")
    return "wrote"


def run_shell(path: str) -> int:
    return os.system(f"touch {path}")


def read_file(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def allocate(num_bytes: int) -> int:
    return len(bytearray(num_bytes))


def die(code: int) -> None:
    os._exit(code)


@pytest.fixture(scope="module")
def pool() -> WorkerPool:
    with WorkerPool(PoolConfig(num_workers=1, preload=())) as small:
        yield small


def test_run_returns_the_result(pool: WorkerPool) -> None:
    assert pool.run(add, 2, 3, timeout=10) == 5


def test_hung_worker_is_killed_and_replaced(pool: WorkerPool) -> None:
    before = pool.run(worker_pid, timeout=10)
    start = time.monotonic()
    with pytest.raises(WorkerTimeout) as info:
        pool.run(sleep_then_return, 60, timeout=0.5)
    assert time.monotonic() - start < 5
    assert info.value.timeout_s == 0.5 and "sleep_then_return" in str(info.value)
    # the single worker was replaced: a normal call still succeeds, in a new process
    assert pool.run(add, 1, 1, timeout=10) == 2
    assert pool.run(worker_pid, timeout=10) != before


def test_a_fast_call_is_not_timed_out(pool: WorkerPool) -> None:
    assert pool.run(sleep_then_return, 0.1, timeout=5) == "woke"


def test_errors_of_the_function_propagate(pool: WorkerPool) -> None:
    with pytest.raises(ValueError, match="boom"):
        pool.run(fail, "boom", timeout=10)


def test_timeout_must_be_positive(pool: WorkerPool) -> None:
    with pytest.raises(ValueError):
        pool.run(add, 1, 2, timeout=0)


async def test_arun_does_not_block_the_event_loop(pool: WorkerPool) -> None:
    start = time.monotonic()
    slow = asyncio.ensure_future(pool.arun(sleep_then_return, 0.6, timeout=10))
    await asyncio.sleep(0.05)
    assert time.monotonic() - start < 0.5  # the loop ran while the worker slept 0.6 s
    assert not slow.done()
    assert await slow == "woke"


async def test_arun_timeout(pool: WorkerPool) -> None:
    with pytest.raises(WorkerTimeout):
        await pool.arun(sleep_then_return, 60, timeout=0.3)
    assert await pool.arun(add, 4, 5, timeout=10) == 9


def test_sandbox_refuses_writes_and_processes(pool: WorkerPool, tmp_path: Path) -> None:
    target = tmp_path / "written"
    with pytest.raises(SandboxViolation):
        pool.run(write_file, str(target), timeout=10)
    with pytest.raises(SandboxViolation):
        pool.run(run_shell, str(tmp_path / "touched"), timeout=10)
    assert not target.exists() and not (tmp_path / "touched").exists()
    # control: the same function does write outside the sandbox, and reads are allowed
    assert write_file(str(target)) == "wrote"
    assert pool.run(read_file, str(target), timeout=10) == "x"


def test_memory_cap_turns_a_huge_allocation_into_memory_error() -> None:
    with WorkerPool(PoolConfig(num_workers=1, preload=(), max_memory_mb=512)) as capped:
        with pytest.raises(MemoryError):
            capped.run(allocate, 2 << 30, timeout=10)
        assert capped.run(allocate, 1 << 20, timeout=10) == 1 << 20


def test_a_dying_worker_is_reported_and_replaced(pool: WorkerPool) -> None:
    with pytest.raises(WorkerCrashed, match="exit code 3"):
        pool.run(die, 3, timeout=10)
    assert pool.run(add, 3, 4, timeout=10) == 7


def test_close_is_idempotent_and_the_pool_restarts_lazily() -> None:
    pool = WorkerPool(PoolConfig(num_workers=1, preload=(), start_method="fork"))
    assert pool.run(add, 1, 2, timeout=10) == 3
    pool.close()
    pool.close()
    assert pool.run(add, 2, 2, timeout=10) == 4
    pool.close()


def test_shared_pool_is_one_object() -> None:
    assert shared_pool() is shared_pool()


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        PoolConfig(num_workers=0)
    with pytest.raises(ValueError):
        PoolConfig(bogus=1)  # type: ignore[call-arg]


def test_warm_waits_for_every_worker_to_start() -> None:
    # run_config warms the pool before its clock starts: afterwards a call finds every
    # worker already up (no process is spawned mid-search).
    with WorkerPool(PoolConfig(num_workers=2, preload=())) as pool:
        assert pool.warm() == 2
        pids = {pool.run(os.getpid, timeout=10) for _ in range(6)}
        assert len(pids) <= 2
        assert pool.warm() == 2  # idempotent


def test_a_task_set_warms_its_verifiers_pool() -> None:
    from verifiers.tasks import load_tasks

    with WorkerPool(PoolConfig(num_workers=1, preload=())) as pool:
        tasks = load_tasks({"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 1}, pool=pool)
        tasks.warm()
        assert pool._pool is not None and pool._pool.active
