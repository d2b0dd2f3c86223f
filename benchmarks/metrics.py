"""Pure arithmetic of the search benchmarks: counter deltas, rates, shares (no I/O).

Snapshots are :func:`benchmarks.server.parse_metrics` dicts of a vLLM server's Prometheus counters;
samples are polls of the server taken while a run goes on (:mod:`benchmarks.search_runs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from benchmarks.server import PREFIX_HITS, PREFIX_QUERIES

GENERATED = "vllm:generation_tokens_total"
PROMPT = "vllm:prompt_tokens_total"
SEQUENCES = "vllm:request_prompt_tokens_count"
"""Finished sequences: vLLM counts each of a request's ``n`` samples."""
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_USAGE = "vllm:kv_cache_usage_perc"
"""The share of the server's KV-cache blocks in use, 0-1 (a gauge)."""
PREEMPTIONS = "vllm:num_preemptions_total"
"""Sequences the server preempted (their KV blocks freed, their tokens computed again later)."""


def counter_delta(before: Mapping[str, float], after: Mapping[str, float], name: str) -> float:
    """How much counter ``name`` grew between two :func:`benchmarks.server.parse_metrics` snapshots."""
    return after.get(name, 0.0) - before.get(name, 0.0)


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``, or None when ``whole`` is not positive."""
    return part / whole if whole > 0 else None


def cache_hit_rate(before: Mapping[str, float], after: Mapping[str, float]) -> float | None:
    """Prefix-cache hit tokens / queried prompt tokens between two snapshots, in [0, 1]."""
    return ratio(counter_delta(before, after, PREFIX_HITS), counter_delta(before, after, PREFIX_QUERIES))


@dataclasses.dataclass(frozen=True)
class Sample:
    """One poll of the server: seconds since the run started, counters and gauges."""

    t: float
    generated: float
    """Generated tokens since the run started."""
    running: float
    waiting: float
    kv_usage: float = 0.0
    """Share of the KV cache in use (0-1)."""
    preemptions: float = 0.0
    """Preemptions since the run started."""


def window_rate(samples: Sequence[Sample], lo: float = 0.1, hi: float = 0.9) -> float | None:
    """Generated tok/s between the moments a fraction ``lo`` and ``hi`` of the run's tokens
    had been generated (linear interpolation between samples).

    This is the run's sustained rate: it leaves out the ramp-up (first requests' prefill)
    and the straggler tail (the last few trees decoding alone in a thin batch).
    """
    if len(samples) < 2 or not 0.0 <= lo < hi <= 1.0:
        return None
    total = samples[-1].generated - samples[0].generated
    if total <= 0:
        return None

    def when(fraction: float) -> float:
        target = samples[0].generated + fraction * total
        for a, b in zip(samples, samples[1:]):
            if b.generated >= target:
                span = b.generated - a.generated
                return a.t + (b.t - a.t) * ((target - a.generated) / span if span else 0.0)
        return samples[-1].t

    seconds = when(hi) - when(lo)
    return (hi - lo) * total / seconds if seconds > 0 else None


def queued_rate(samples: Sequence[Sample]) -> float | None:
    """Generated tok/s over the poll intervals that began with requests waiting at the server.

    While requests wait, the server is as full as it lets itself be, so this rate is what the
    server gives this workload; against the saturated figure it shows the server's cost per
    token (prefill, short requests), apart from the client and the run's straggler tail.
    """
    tokens = seconds = 0.0
    for a, b in zip(samples, samples[1:]):
        if a.waiting > 0:
            tokens, seconds = tokens + b.generated - a.generated, seconds + b.t - a.t
    return tokens / seconds if seconds > 0 else None


def timeline(samples: Sequence[Sample], every_s: float = 5.0) -> list[tuple[float, float, float, float, float, float]]:
    """``(start s, generated tok/s, max running, max waiting, max KV-cache usage, preemptions)``
    per ``every_s``-second bucket."""
    rows: list[tuple[float, float, float, float, float, float]] = []
    if not samples:
        return rows
    edge, first = every_s, samples[0]
    bucket: list[Sample] = [first]
    for s in samples[1:]:
        bucket.append(s)
        if s.t >= edge or s is samples[-1]:
            a, b = bucket[0], bucket[-1]
            rate = (b.generated - a.generated) / (b.t - a.t) if b.t > a.t else 0.0
            rows.append((a.t, rate, max(x.running for x in bucket), max(x.waiting for x in bucket),
                         max(x.kv_usage for x in bucket), b.preemptions - a.preemptions))
            bucket, edge = [s], edge + every_s * (1 + int((s.t - edge) // every_s))
    return rows


def normalised_wall_ratio(wall_a: float, tokens_a: float, wall_b: float, tokens_b: float) -> float | None:
    """(wall_a / tokens_a) / (wall_b / tokens_b): seconds per generated token of a over b's."""
    if min(wall_a, tokens_a, wall_b, tokens_b) <= 0:
        return None
    return (wall_a / tokens_a) / (wall_b / tokens_b)


def fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    """``value`` formatted, or ``n/a``."""
    return "n/a" if value is None else f"{value:{spec}}{suffix}"
