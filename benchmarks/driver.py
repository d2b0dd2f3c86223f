"""The single driver's ceiling against simulated replicas (issue 26 §4, §6).

``ponder bench scale`` starts N fake OpenAI-compatible replicas (:mod:`benchmarks.fake_server`,
one process each: a number of sequences decoded at once, a decode speed, a fixed latency, a
block prefix cache, steps that are real token ids of the policy's tokenizer), then runs a cheap
search on thousands of problems against them with the real driver: ``ponder.run.run_config``
(the scheduler, the HTTP client with tree-affine routing, the answer checker's worker pool,
the run directory's writer). Not vLLM, so what saturates is the driver.

Per N it reports, over the search's wall time (after the engine is open):

- step requests/s: completions the replicas answered (their counters), per second;
- the driver's CPU share: the process's CPU time (every thread) / wall, 1.0 = one core;
- the fraction of the replicas' aggregate capacity used: busy sequence-seconds (each request
  holds its ``n`` sequences for its service time) / (sum of ``max_num_seqs`` x wall);
- the machine's CPU use over the same window (the fakes and the checker's workers share it).

The driver saturates where requests/s stops growing with N while its CPU share nears 1.0 (one
core: the event loop is one thread). :func:`profile_lines` reads a cProfile of one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import dataclasses
import io
import json
import os
import pstats
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from benchmarks.fake_server import Replica, start_fakes
from benchmarks.metrics import counter_delta
from benchmarks.server import parse_metrics
from models.client import VLLMClient
from models.server import ServerSettings, terminate
from ponder.config import RunConfig, parse_run_config
from verifiers.tasks import TaskSet, load_tasks

BUSY = "fake:busy_seq_seconds_total"
REQUESTS = "vllm:request_success_total"

STEP_TEXTS = (
    "First, add {a} and {b} to get {c}.", "Next, {c} plus {a} is {d}.", "Now subtract {b} from {d}, which gives {a}.",
    "Let me check: {a} + {b} = {c}.", "Adding the next term, {c} + {b} = {d}.", "So far the sum is {d}.",
    "We carry the one: {a} + {b} makes {c}.", "Combining the terms gives {c} + {d}.",
)
ANSWER_TEXTS = ("So the answer is \\boxed{{{d}}}.", "Therefore the total is \\boxed{{{c}}}.")


def step_pool(tokenizer: object, path: Path, *, size: int = 96, answer_share: float = 0.2) -> Path:
    """Writes the fakes' steps (``--steps-file``): texts whose token ids decode back to them
    exactly with ``tokenizer`` (an :class:`~models.tokenizer.HFTokenizer`), a share of them
    answers that end with the EOS token."""
    steps = []
    for k in range(size):
        a, b = 11 + 7 * k % 80, 13 + 5 * k % 70
        values = {"a": a, "b": b, "c": a + b, "d": a + 2 * b}
        eos = k < size * answer_share
        text = (ANSWER_TEXTS if eos else STEP_TEXTS)[k % (2 if eos else len(STEP_TEXTS))].format(**values)
        text = text if eos else text + "\n\n"
        ids = list(tokenizer.encode(text))  # type: ignore[attr-defined]
        decoded, offsets = tokenizer.decode_with_offsets(ids)  # type: ignore[attr-defined]
        if decoded != text:
            continue
        eos_id = getattr(tokenizer, "eos_token_id", None)
        if eos and eos_id is not None:  # vLLM's token_ids end with the EOS token; its text does not
            ids, offsets = ids + [eos_id], (*offsets, len(text))
        steps.append({"text": text, "token_ids": ids, "offsets": list(offsets), "eos": eos})
    if not steps:
        raise RuntimeError("no step text decodes back to itself with this tokenizer")
    path.write_text(json.dumps({"steps": steps}))
    return path


def workload(num_problems: int, concurrent: int, in_flight: int, endpoints: Sequence[str], run_dir: str,
             simulations: int = 8, children: int = 3) -> RunConfig:
    """MCTS with prior values (no reward model, no rollouts): one request of ``children``
    samples per simulation; chain_sum problems (the answers the checker's pool verifies)."""
    return parse_run_config({
        "name": "bench-scale",
        "run_dir": run_dir,
        "tasks": {"source": "reasoning_gym", "name": "chain_sum", "seed": 7, "size": num_problems,
                  "config": {"min_terms": 3, "max_terms": 3, "min_digits": 2, "max_digits": 2}},
        "steps": {"max_depth": 6, "max_step_tokens": 48},
        "search": {"algorithm": "mcts", "num_simulations": simulations, "num_children": children, "value": "prior"},
        "model": {"endpoints": list(endpoints), "model": "fake", "max_in_flight": in_flight, "routing": "tree",
                  "timeout_s": 120},
        "max_concurrent_problems": concurrent,
    })


@dataclasses.dataclass(frozen=True)
class ScalePoint:
    """One measured run: N replicas, what the driver did."""

    replicas: int
    problems: int
    concurrent: int
    requests: float
    wall_s: float
    driver_cpu_s: float
    busy_seq_s: float
    capacity_seqs: int
    machine_busy: float
    """Share of the machine's CPU time (all cores) busy over the window, in [0, 1]."""
    errors: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_share(self) -> float:
        return self.driver_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        """The driver's CPU milliseconds per step request: what one core's ceiling is set by."""
        return 1000 * self.driver_cpu_s / self.requests if self.requests else 0.0

    @property
    def capacity_used(self) -> float:
        return self.busy_seq_s / (self.capacity_seqs * self.wall_s) if self.wall_s else 0.0

    @property
    def capacity_per_s(self) -> float:
        """Requests/s the replicas could answer at this run's mean request (service time x n)."""
        per_request = self.busy_seq_s / self.requests if self.requests else 0.0
        return self.capacity_seqs / per_request if per_request else 0.0


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


async def _counters(clients: Sequence[VLLMClient]) -> list[dict[str, float]]:
    async def one(c: VLLMClient) -> dict[str, float]:
        text = await c.metrics()
        out = parse_metrics(text)
        for line in text.splitlines():  # the fake's own counters (parse_metrics keeps vllm:*)
            if line.startswith(BUSY):
                out[BUSY] = float(line.rsplit(" ", 1)[1])
        return out

    return list(await asyncio.gather(*(one(c) for c in clients)))


async def measure(cfg: RunConfig, tasks: TaskSet, endpoints: Sequence[str], max_num_seqs: int,
                  profile: cProfile.Profile | None = None) -> ScalePoint:
    """Runs ``cfg`` (its endpoints the fakes) and reads the fakes' counters around the search."""
    from ponder.run import run_config

    await asyncio.to_thread(tasks.warm)
    clients = [VLLMClient(e, "fake") for e in endpoints]
    window: dict[str, float] = {}

    def on_progress(message: str) -> None:  # the search starts after the engine is open
        if message.startswith("searching"):
            window.update(cpu=time.process_time(), wall=time.perf_counter())
            window["busy"], window["total"] = _cpu_times()
            if profile is not None:
                profile.enable()

    try:
        before = await _counters(clients)
        outcome = await run_config(cfg, tasks=tasks, warm_up_server=False, on_progress=on_progress)
        if profile is not None:
            profile.disable()
        cpu, wall = time.process_time() - window["cpu"], time.perf_counter() - window["wall"]
        busy, total = _cpu_times()
        after = await _counters(clients)
    finally:
        for c in clients:
            await c.aclose()
    sum_delta = lambda name: sum(counter_delta(b, a, name) for b, a in zip(before, after, strict=True))  # noqa: E731
    return ScalePoint(
        replicas=len(endpoints), problems=len(outcome.rows), concurrent=cfg.max_concurrent_problems,
        requests=sum_delta(REQUESTS), wall_s=wall, driver_cpu_s=cpu, busy_seq_s=sum_delta(BUSY),
        capacity_seqs=max_num_seqs * len(endpoints),
        machine_busy=(busy - window["busy"]) / (total - window["total"]) if total > window["total"] else 0.0,
        errors=sum(1 for r in outcome.rows if r["status"] == "error"))


@contextlib.contextmanager
def fakes(count: int, replica: Replica) -> Iterator[list[str]]:
    """``count`` fake replicas on this machine; their endpoints; stopped at the end."""
    records = start_fakes(ServerSettings(), count, replica, timeout_s=60 + count)
    try:
        yield [r.endpoint for r in records]
    finally:
        for r in records:
            terminate(r.pid, timeout=5)


def run_scale(counts: Sequence[int], replica: Replica, *, problems_per_replica: int, concurrent_per_replica: int,
              simulations: int, children: int, max_problems: int = 100_000, profile_at: int | None = None,
              on_progress: Callable[[str], None] | None = None,
              on_point: Callable[[ScalePoint], None] | None = None) -> tuple[list[ScalePoint], cProfile.Profile | None]:
    """One measured run per replica count (after one small untimed run that pays the process's
    one-off costs); with ``profile_at``, the run with that many replicas is profiled."""
    say = on_progress or (lambda _m: None)
    points: list[ScalePoint] = []
    prof = cProfile.Profile() if profile_at is not None else None
    with tempfile.TemporaryDirectory(prefix="ponder-bench-scale-") as tmp:
        for i, n in enumerate(counts):
            say(f"starting {n} fake replica(s)")
            with fakes(n, replica) as endpoints:
                size = min(max_problems, problems_per_replica * n)
                concurrent = min(size, concurrent_per_replica * n)
                in_flight = max(64, concurrent * 2)
                if i == 0:  # imports, the checker's workers, the tokenizer: not in any point
                    small = workload(8, 8, 16, endpoints, str(Path(tmp) / "warm"), simulations, children)
                    say("an untimed warm-up run")
                    asyncio.run(measure(small, load_tasks(small.tasks), endpoints, replica.max_num_seqs))
                cfg = workload(size, concurrent, in_flight, endpoints, str(Path(tmp) / f"n{n}"), simulations,
                               children)
                say(f"{n} replica(s): {size} problems, {concurrent} at once")
                point = asyncio.run(measure(cfg, load_tasks(cfg.tasks), endpoints, replica.max_num_seqs,
                                            prof if n == profile_at else None))
            points.append(point)
            if on_point is not None:
                on_point(point)
    return points, prof


def completions_now(endpoints: Sequence[str]) -> float:
    """The replicas' completions so far (their request counters, summed)."""
    import httpx

    total = 0.0
    for e in endpoints:
        total += parse_metrics(httpx.get(e.rstrip("/") + "/metrics", timeout=10).text).get(REQUESTS, 0.0)
    return total


def run_shard_points(replicas: int, driver_counts: Sequence[int], replica: Replica, *, problems: int,
                     concurrent_per_driver: int, simulations: int, children: int,
                     on_progress: Callable[[str], None] | None = None) -> list:
    """The same ``problems`` on ``replicas`` fake replicas, sharded over each count of driver
    actors in turn (:mod:`benchmarks.shards`)."""
    from benchmarks.shards import run_sharded

    say = on_progress or (lambda _m: None)
    out = []
    with tempfile.TemporaryDirectory(prefix="ponder-bench-shards-") as tmp, fakes(replicas, replica) as endpoints:
        for d in driver_counts:
            concurrent = min(problems, concurrent_per_driver)
            cfg = workload(problems, concurrent, max(64, 2 * concurrent), endpoints, str(Path(tmp) / f"d{d}"),
                           simulations, children)
            say(f"{d} driver actor(s) on {replicas} replicas: {problems} problems, {concurrent} at once each")
            out.append(run_sharded(cfg, d, endpoints, lambda: completions_now(endpoints)))
    return out


def shard_line(r: Any) -> str:
    cpu = " + ".join(f"{c / r.wall_s:.0%}" for c in r.driver_cpu_s)
    return (f"{r.drivers:>7} {r.problems:>8} {r.rows:>5} {r.twice:>5} {r.requests:>8.0f} {r.wall_s:>7.1f} "
            f"{r.requests_per_s:>7.0f}  {cpu}")


SHARD_HEADER = f"{'drivers':>7} {'problems':>8} {'rows':>5} {'twice':>5} {'requests':>8} {'wall s':>7} {'req/s':>7}  driver CPU each"

HEADER = (f"{'replicas':>8} {'problems':>8} {'at once':>7} {'requests':>8} {'wall s':>7} {'req/s':>7} "
          f"{'capacity req/s':>14} {'used':>6} {'driver CPU':>10} {'CPU ms/req':>10} {'machine CPU':>11} {'errors':>6}")


def point_line(p: ScalePoint) -> str:
    return (f"{p.replicas:>8} {p.problems:>8} {p.concurrent:>7} {p.requests:>8.0f} {p.wall_s:>7.1f} "
            f"{p.requests_per_s:>7.0f} {p.capacity_per_s:>14.0f} {p.capacity_used:>6.1%} {p.cpu_share:>10.0%} "
            f"{p.cpu_ms_per_request:>10.2f} "
            f"{p.machine_busy:>11.0%} {p.errors:>6}")


def saturation_line(points: Sequence[ScalePoint]) -> str:
    """Where the driver stops keeping up: the first N whose replicas it uses below 80 %."""
    if not points:
        return ""
    best = max(points, key=lambda p: p.requests_per_s)
    short = [p for p in points if p.capacity_used < 0.8]
    where = (f"from {short[0].replicas} replicas it uses {short[0].capacity_used:.0%} of their capacity"
             if short else "it kept every replica count above 80 % of capacity")
    cost = min(p.cpu_ms_per_request for p in points if p.requests)
    return (f"driver ceiling: {best.requests_per_s:.0f} step requests/s (at {best.replicas} replicas, driver CPU "
            f"{best.cpu_share:.0%} of one core); {where}; at {cost:.2f} ms of driver CPU per request one free core "
            f"would dispatch at most {1000 / cost:.0f}/s")


def owner(filename: str) -> str:
    """Who a profiled function belongs to: an installed package, a ponder package, the
    standard library's module, or built-in (C) code."""
    if filename.startswith("~") or filename.startswith("<"):
        return "built-in"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    root = Path(__file__).resolve().parents[1]
    if Path(filename).is_relative_to(root):
        return "ponder:" + Path(filename).relative_to(root).parts[0]
    return "stdlib:" + Path(filename).stem


def profile_lines(prof: cProfile.Profile, top: int = 25) -> list[str]:
    """Own time by owner (:func:`owner`), then the ``top`` functions by own time and by
    cumulative time."""
    by: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        by[owner(filename)] = by.get(owner(filename), 0.0) + tottime
    total = sum(by.values()) or 1.0
    lines = ["own time by owner: " + ", ".join(f"{k} {v / total:.0%}" for k, v in
                                                sorted(by.items(), key=lambda kv: -kv[1]) if v / total >= 0.01)]
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return lines + [line for line in out.getvalue().splitlines() if line.strip()]


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
