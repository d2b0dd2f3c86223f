"""``ponder bench parallel``: fixed vs adaptive in-tree parallelism on one server, in one run.

Two workloads (issue 28): MCTS over chain_sum (10 simulations, 3 children, depth 6, prior
values) and the throughput preset's step beam, each run twice on the same problems: with
``num_parallel: 1`` (adaptive off: the algorithm as specified) and with ``adaptive_parallel``
(MCTS: up to ``max_parallel`` simulations per tree; beam: up to ``max_width`` nodes per
level), while the engine is under-filled. The target the adaptive runs fill to,
``model.target_in_flight``, is the saturation point of a probe of the same server in the same
bench (the smallest concurrency within 10% of the best tok/s), so nothing here is a constant.

Reported per run: wall, the server's generated tok/s over the whole run (first request to
last reply: the drain included) and its fraction of the saturated tok/s (the probes' mean,
before and after), accuracy with its standard error, generated tokens per problem (the
accuracy is compared at the tokens shown: MCTS does the same simulations either way; the
adaptive beam expands more and says so), the paired accuracy difference with its standard
error, and the parallelism the trees used (from their traces).

Accuracy at equal generated tokens: adaptive parallelism changes what a search does and
may spend more tokens (MCTS's parallel simulations select by virtual loss and reach deeper;
the wider beam expands more nodes). When the adaptive run generated more than 10 % more than
the fixed run, a third run, *matched*, repeats it with each problem's generated
tokens capped (``budget.max_generated_tokens``) at the cap under which the adaptive run's own
per-problem tokens, each cut there, sum to the fixed run's total (``matching_cap``); its
accuracy is compared with the fixed run's, paired by problem. A cap is checked before each
request, so a search with several requests in flight may pass it by those requests (the work
adaptive parallelism adds -- MCTS simulations, beam nodes, best-first pops -- is held back when
the requests in flight, at the search's mean tokens a request, would reach it: ``held_by_budget``
in its trace; the floor's requests are not), and a cut
search is not the uncut one stopped early: the totals are printed beside the comparison, which
says when they still differ by more than 10 %.

LLM Reasoners (issue 28's peer) has no installable package here, so its MCTS is not run: the
wall it recorded on the same workload and server settings (202.4 s, another session, another
load) is printed beside ponder's, as a recorded figure, not a same-run ratio.

``--fake`` runs the same bench against a fake replica (:func:`fake_replica`; not vLLM: a
fixed number of sequences decoded at once, each at a fixed speed, steps drawn from a pool of
the embedded tokenizer's texts, a share of them answers), where what is measured is the
scheduler's fill alone: the replica's capacity does not move with the machine's load, and a
run takes seconds. The share of answers sets the trees' shape (more answers: thinner trees).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks.search_runs import RunMeasure, override
from benchmarks.server import BenchRow
from benchmarks.suite import STEPS, chain_sum, throughput_config
from ponder.config import RunConfig, parse_run_config


def mcts_config(num_problems: int = 32) -> RunConfig:
    """Issue 28's MCTS workload: chain_sum, 10 simulations, 3 children, depth 6, prior values."""
    return parse_run_config({
        "name": "bench-parallel-mcts", "tasks": chain_sum(num_problems, 7, 2), "steps": {**STEPS, "max_depth": 6},
        "search": {"algorithm": "mcts", "num_simulations": 10, "num_children": 3, "value": "prior",
                   "num_parallel": 1},
    })


def beam_config(num_problems: int = 64, workload: str = "chain_sum") -> RunConfig:
    """The throughput preset's step beam (B1 = 3, B2 = 4, prior-scored)."""
    return throughput_config(num_problems, workload)


LLM_REASONERS_MCTS_WALL_S = 202.4
"""LLM Reasoners 1.0.2's MCTS on the MCTS workload (32 chain_sum, 10 simulations, 3 children,
depth 6, one request at a time), as recorded in issue 28 on the float32 embedded-model server."""
LLM_REASONERS_MCTS_PROBLEMS = 32
"""The problems that recorded wall covers: a run of another size is not compared with it."""
SATURATION_TARGET = 0.85
"""Issue 28: each run's tok/s over the whole run (drain included) as a share of saturated."""
SPEEDUP_TARGET = 10.0
"""Issue 28: ponder's MCTS wall against LLM Reasoners' at equal simulations."""


@contextlib.contextmanager
def fake_replica(answer_share: float = 0.5, max_num_seqs: int = 128, tokens_per_s: float = 20.0,
                 latency_s: float = 0.05) -> Iterator[tuple[str, str]]:
    """Yields ``(endpoint, description)`` of a fake replica (:mod:`benchmarks.fake_server`) whose
    steps are the embedded tokenizer's (``answer_share`` of them answers, in [0, 1)); stopped
    at the end. ``max_num_seqs`` sequences run at once, each at ``tokens_per_s``, plus
    ``latency_s`` seconds per request: its capacity is ``max_num_seqs * tokens_per_s`` tok/s."""
    from benchmarks.driver import step_pool
    from benchmarks.fake_server import Replica, start_fake
    from models.embedded import embedded_checkpoint
    from models.server import ServerSettings, terminate
    from models.tokenizer import HFTokenizer

    with tempfile.TemporaryDirectory(prefix="ponder-fake-steps-") as tmp:
        pool = step_pool(HFTokenizer(embedded_checkpoint()), Path(tmp) / "steps.json", answer_share=answer_share)
        replica = Replica(tokens_per_s=tokens_per_s, latency_s=latency_s, max_num_seqs=max_num_seqs,
                          steps_file=str(pool))
        rec = start_fake(ServerSettings(), replica=replica)
        try:
            yield rec.endpoint, (f"fake replica at {rec.endpoint} (benchmarks.fake_server, not vLLM): {max_num_seqs} "
                                 f"sequences at once, {tokens_per_s:g} tok/s each, {latency_s:g} s per request; "
                                 f"steps of the embedded tokenizer, {answer_share:.0%} of them answers")
        finally:
            terminate(rec.pid, timeout=5)


async def fake_lines(workloads: Sequence[RunConfig], bound: int, answer_share: float, capacity: int,
                     max_in_flight: int, tokens_per_s: float = 20.0) -> list[str]:
    """Each workload's fixed and adaptive runs against one fake replica of ``capacity`` sequences
    (also the runs' ``target_in_flight``), all problems at once: wall, the share of the replica's
    capacity used over the search (busy sequence-seconds / (capacity x wall)), calls and what the
    trees' parallelism did. Accuracy is not reported (the fake's answers are not the problems')."""
    from benchmarks.driver import measure
    from verifiers.tasks import load_tasks

    out: list[str] = []
    with fake_replica(answer_share, capacity, tokens_per_s) as (url, desc):
        out.append(f"server: {desc}; target_in_flight {capacity}, max_in_flight {max_in_flight}")
        for workload in workloads:
            for label, cfg in arms(workload, bound):
                with tempfile.TemporaryDirectory(prefix="ponder-bench-fake-") as tmp:
                    tasks = load_tasks(cfg.tasks)
                    cfg = override(cfg, {"run_dir": tmp, "max_concurrent_problems": len(tasks), "model": {
                        "endpoints": [url], "model": "fake", "max_in_flight": max_in_flight,
                        "target_in_flight": capacity}})
                    point = await measure(cfg, tasks, [url], capacity)
                    parallel = read_parallel(Path(tmp))
                    rows = [json.loads(line) for line in (Path(tmp) / "results.jsonl").read_text().splitlines()]
                calls = sum(int(r["usage"].get("calls", 0)) for r in rows)
                tokens = sum(int(r["usage"].get("generated_tokens", 0)) for r in rows)
                widened, waits, no_free = tree_counts(parallel)
                out.append(f"[{label}] wall {point.wall_s:.2f} s, capacity used {point.capacity_used:.2f} "
                           f"(drain included); {len(rows)} problems, {calls} calls, {tokens} generated tokens; "
                           f"trees widened {widened}; simulations that waited on a node under expansion {waits}, "
                           f"times a tree had room but no free leaf {no_free}")
    return out


def arms(cfg: RunConfig, bound: int) -> list[tuple[str, RunConfig]]:
    """The run as configured (adaptive off) and with adaptive parallelism up to ``bound``."""
    search = cfg.search.algorithm
    extra = {"adaptive_parallel": True, ("max_width" if search == "step_beam" else "max_parallel"): bound}
    return [(f"{search} fixed", override(cfg, {"search": {"adaptive_parallel": False}})),
            (f"{search} adaptive", override(cfg, {"search": extra}))]


def saturation_point(rows: Sequence[BenchRow], within: float = 0.10) -> tuple[int, float]:
    """(the smallest probed concurrency within ``within`` of the best tok/s, the best tok/s)."""
    load = [r for r in rows if r.load == "throughput"]
    best = max(r.tokens_per_second for r in load)
    return min(r.concurrency for r in load if r.tokens_per_second >= (1.0 - within) * best), best


def read_parallel(run_dir: Path) -> list[dict[str, Any]]:
    """``extra.parallel`` of every trace in a run directory."""
    out = []
    for path in sorted((run_dir / "traces").glob("*.json")):
        par = json.loads(path.read_text()).get("extra", {}).get("parallel")
        if par is not None:
            out.append(par)
    return out


def accuracy_se(correct: Sequence[bool]) -> tuple[float, float]:
    """Accuracy and its binomial standard error."""
    n = len(correct)
    p = sum(correct) / n if n else 0.0
    return p, math.sqrt(p * (1.0 - p) / n) if n else 0.0


def paired_difference(a: dict[str, bool], b: dict[str, bool]) -> tuple[float, float, int]:
    """Mean of b - a over the problems both finished, its standard error, and their count."""
    ids = sorted(set(a) & set(b))
    d = [float(b[i]) - float(a[i]) for i in ids]
    n = len(d)
    if n < 2:
        return (d[0] if d else 0.0), 0.0, n
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    return mean, math.sqrt(var / n), n


def tree_counts(parallel: list[dict[str, Any]]) -> tuple[int, int, int]:
    """Over a run's trees (their traces' ``extra.parallel``): trees widened above the floor,
    simulations that waited on a node under expansion, times a tree had room but no free leaf."""
    return (sum(1 for p in parallel if p.get("extra", 0) > 0), sum(p.get("waits", 0) for p in parallel),
            sum(p.get("no_free_leaf", 0) for p in parallel))


def arm_lines(label: str, m: RunMeasure, parallel: list[dict[str, Any]], saturated: float) -> list[str]:
    """One run's line: wall, tok/s (drain included), fraction of saturated, accuracy, tokens, parallelism."""
    finished = [r for r in m.rows if r["status"] != "error"]
    acc, se = accuracy_se([bool(r["correct"]) for r in finished])
    gen = m.summary["generated_tokens"]
    per = gen / len(finished) if finished else 0.0
    widened, waits, no_free = tree_counts(parallel)
    peak = max((p.get("max_in_flight", 0) for p in parallel), default=0)
    mean = sum(p.get("mean_in_flight", 0.0) for p in parallel) / len(parallel) if parallel else 0.0
    calls = sum(int(r["usage"].get("calls", 0)) for r in finished)
    running, peak_running = server_fill(m)
    return [f"[{label}] wall {m.wall_seconds:.1f} s, server generated {m.server_generated:.0f} tok "
            f"-> {m.tok_per_s:.1f} tok/s = {m.tok_per_s / saturated:.2f} of saturated (drain included); "
            f"accuracy {acc:.3f} ± {se:.3f} (n={len(finished)}, errors {len(m.rows) - len(finished)}); "
            f"policy generated {gen} tok ({per:.0f} per problem, {calls / max(len(finished), 1):.1f} calls)",
            f"    trees: {len(parallel)}, widened {widened}; in flight per tree: max {peak}, mean of means "
            f"{mean:.2f}; peak requests at the gate {m.peak_in_flight}; simulations that waited on a node "
            f"under expansion {waits}, times a tree had room but no free leaf {no_free}",
            f"    server running (vllm:num_requests_running, sampled): time-weighted mean {running:.1f}, "
            f"peak {peak_running:.0f}; this process (the search client) used "
            f"{m.client_cpu_seconds / max(m.wall_seconds, 1e-9):.2f} of a core", shape_line(m), tail_line(m)]


def shape_line(m: RunMeasure) -> str:
    """Per sequence at the server: prompt tokens, those computed (prefix-cache misses), generated:
    on a CPU server a computed prompt token costs compute as a generated one does, and the probe's
    requests (32 random prompt tokens, 64 generated) are not a search's."""
    shape = m.shape
    if shape is None:
        return "    per sequence at the server: no sequence finished"
    prompt, computed, generated = shape
    return (f"    per sequence at the server: {prompt} prompt tokens ({computed} computed, the rest prefix-cache hits), "
            f"{generated} generated (the probe's: 32 computed, 64 generated)")


def tail_line(m: RunMeasure) -> str:
    """Where the wall went, from the problems' own clocks (every problem starts with the run): when
    half and 90 % of them had ended, and the calls of the longest one, one after another or
    widened, over its wall (the run's critical path: a tree's next call waits on its last)."""
    rows = sorted((r for r in m.rows if r["status"] != "error"), key=lambda r: float(r["usage"].get("wall_seconds", 0.0)))
    if not rows:
        return "    tail: no finished problem"
    ends = [float(r["usage"].get("wall_seconds", 0.0)) for r in rows]
    wall = max(m.wall_seconds, 1e-9)
    half, most = ends[(len(ends) - 1) // 2], ends[math.ceil(0.9 * len(ends)) - 1]
    last = rows[-1]["usage"]
    calls = int(last.get("calls", 0))
    return (f"    tail: half the problems had ended at {half:.1f} s ({half / wall:.2f} of the wall), 90 % at "
            f"{most:.1f} s ({most / wall:.2f}); the longest problem: {calls} calls in {ends[-1]:.1f} s "
            f"({ends[-1] / max(calls, 1):.1f} s a call), {int(last.get('generated_tokens', 0))} tokens")


def server_fill(m: RunMeasure) -> tuple[float, float]:
    """The server's running requests over the run: (time-weighted mean, peak) of the samples."""
    s = m.samples
    area = sum(a.running * (b.t - a.t) for a, b in zip(s, s[1:]))
    span = s[-1].t - s[0].t if len(s) > 1 else 0.0
    return (area / span if span > 0 else 0.0), max((x.running for x in s), default=0.0)


def per_problem_tokens(m: RunMeasure) -> float:
    """Policy tokens generated per finished problem."""
    finished = [r for r in m.rows if r["status"] != "error"]
    return m.summary["generated_tokens"] / len(finished) if finished else 0.0


def row_tokens(m: RunMeasure) -> list[int]:
    """Policy tokens each finished problem generated."""
    return [int(r["usage"]["generated_tokens"]) for r in m.rows if r["status"] != "error"]


def matching_cap(adaptive: Sequence[int], total: int) -> int:
    """The per-problem cap ``c`` at which the adaptive run's problems, each cut at ``c``, sum to
    ``total`` (the fixed run's tokens): the smallest ``c`` with sum(min(a, c)) >= total."""
    if sum(adaptive) <= total:
        return max(adaptive, default=1)
    lo, hi = 1, max(adaptive)
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(min(a, mid) for a in adaptive) >= total:
            hi = mid
        else:
            lo = mid + 1
    return lo


def matched_arm(adaptive_cfg: RunConfig, fixed: RunMeasure, adaptive: RunMeasure) -> tuple[str, RunConfig, int] | None:
    """The adaptive run again with each problem's generated tokens capped so that, cut as the
    adaptive run's own problems would be, they sum to the fixed run's tokens (``matching_cap``;
    the config's own cap, if lower, stays): (label, config, the cap). None when the adaptive run
    generated at most 10 % more than the fixed run (at equal tokens, or fewer: a cap cannot add
    tokens, and an accuracy at fewer tokens is the harder comparison for it)."""
    total = int(fixed.summary["generated_tokens"])
    if adaptive.summary["generated_tokens"] <= 1.10 * total:
        return None
    cap = matching_cap(row_tokens(adaptive), total)
    own = adaptive_cfg.budget.max_generated_tokens
    cap = min(cap, own) if own is not None else cap
    label = f"{adaptive_cfg.search.algorithm} adaptive matched"
    return label, override(adaptive_cfg, {"budget": {"max_generated_tokens": cap}}), cap


def compare_lines(fixed: RunMeasure, other: RunMeasure) -> list[str]:
    """``other`` vs the fixed run: wall ratio, tok/s ratio, token ratio, paired accuracy difference."""
    a = {r["id"]: bool(r["correct"]) for r in fixed.rows if r["status"] != "error"}
    b = {r["id"]: bool(r["correct"]) for r in other.rows if r["status"] != "error"}
    diff, se, n = paired_difference(a, b)
    tokens = other.summary["generated_tokens"] / max(fixed.summary["generated_tokens"], 1)
    return [f"    {other.label} / {fixed.label}: wall {other.wall_seconds / max(fixed.wall_seconds, 1e-9):.2f}x, "
            f"tok/s {other.tok_per_s / max(fixed.tok_per_s, 1e-9):.2f}x, generated tokens {tokens:.2f}x; "
            f"accuracy difference {diff:+.3f} ± {se:.3f} (paired, n={n})"
            + ("" if abs(tokens - 1.0) <= 0.10 else " -- NOT at equal tokens: compare per token")]


def within_noise(diff: float, se: float) -> bool:
    """A paired difference within two standard errors of zero (exactly zero when se is 0)."""
    return abs(diff) <= 2.0 * se if se > 0 else diff == 0.0


def target_lines(measured: Sequence[tuple[str, RunMeasure]], saturated: float) -> list[str]:
    """One workload's runs against issue 28's targets: share of saturated (>= 0.85), MCTS wall
    against LLM Reasoners' recorded figure (>= 10x), accuracy at matched tokens within noise."""
    runs = dict(measured)
    fixed = next(m for label, m in measured if label.endswith(" fixed"))
    algorithm = fixed.cfg.search.algorithm
    out = [f"  targets, {algorithm}:"]
    for label, m in measured:
        share = m.tok_per_s / saturated if saturated > 0 else 0.0
        out.append(f"    {label}: {share:.2f} of saturated ({'meets' if share >= SATURATION_TARGET else 'below'} "
                   f"the {SATURATION_TARGET:.2f} target)")
    if algorithm == "mcts" and len(fixed.rows) != LLM_REASONERS_MCTS_PROBLEMS:
        out.append(f"    LLM Reasoners' recorded {LLM_REASONERS_MCTS_WALL_S} s is for {LLM_REASONERS_MCTS_PROBLEMS} "
                   f"problems: not compared with a {len(fixed.rows)}-problem run")
    elif algorithm == "mcts":
        for label, m in measured:
            ratio = LLM_REASONERS_MCTS_WALL_S / max(m.wall_seconds, 1e-9)
            out.append(f"    {label}: LLM Reasoners' recorded {LLM_REASONERS_MCTS_WALL_S} s / {m.wall_seconds:.1f} s "
                       f"= {ratio:.1f}x ({'meets' if ratio >= SPEEDUP_TARGET else 'below'} the "
                       f"{SPEEDUP_TARGET:.0f}x target; a recorded figure, not run here)")
    matched = runs.get(f"{algorithm} adaptive matched") or runs.get(f"{algorithm} adaptive")
    if matched is not None:
        a = {r["id"]: bool(r["correct"]) for r in fixed.rows if r["status"] != "error"}
        b = {r["id"]: bool(r["correct"]) for r in matched.rows if r["status"] != "error"}
        diff, se, n = paired_difference(a, b)
        tokens = matched.summary["generated_tokens"] / max(fixed.summary["generated_tokens"], 1)
        out.append(f"    accuracy at matched tokens ({tokens:.2f}x the fixed run's): {diff:+.3f} ± {se:.3f} "
                   f"(paired, n={n}): {'within' if within_noise(diff, se) else 'outside'} 2 SE of the fixed run")
    return out
