"""Search benchmarks: one shared server, measured search runs, ratios from server counters.

Used by ``ponder bench throughput | compare | accuracy | flat`` (:mod:`benchmarks.cli.speed`, :mod:`benchmarks.cli.methods`). A measured
run is :func:`ponder.run.run_config` on a throw-away run directory (so a rerun measures
again), bracketed by snapshots of the server's Prometheus counters and sampled once per
``interval_s`` while it runs. The arithmetic on counters is in :mod:`benchmarks.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from benchmarks.metrics import (GENERATED, KV_USAGE, PREEMPTIONS, PROMPT, RUNNING, SEQUENCES, WAITING, Sample,
                                cache_hit_rate, counter_delta, fmt, normalised_wall_ratio, queued_rate, ratio,
                                timeline, window_rate)
from benchmarks.server import PREFIX_HITS, BenchRow, format_rows, parse_metrics
from models.client import VLLMClient
from models.managed import ensure_server
from models.server import ServerSettings, server_status
from models.server_settings import machine_cpu_flags
from ponder.config import RunConfig, parse_run_config
from ponder.run import run_config, summarize
from search.protocols import ModelServerError
from verifiers.tasks import TaskSet


def override(cfg: RunConfig, updates: Mapping[str, Any]) -> RunConfig:
    """A validated copy of ``cfg`` with nested ``updates`` merged in (dicts merge, others replace)."""

    def merge(base: dict[str, Any], upd: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in upd.items():
            out[key] = merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
        return out

    return parse_run_config(merge(cfg.model_dump(mode="json"), updates))


# -- the server ------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_endpoint(endpoint: str | None, settings: ServerSettings,
                   on_progress: Callable[[str], None] | None = None) -> Iterator[tuple[str, str]]:
    """Yields ``(endpoint, description)``: ``endpoint`` as given, else a healthy recorded
    server of the same checkpoint (reused as it is), else one started with ``settings`` and
    stopped at the end. The description says which, for the printed settings;
    ``on_progress`` is told the start-up's phases."""
    if endpoint:
        yield endpoint, f"given endpoint {endpoint} (its own settings)"
        return
    before = server_status()
    # A server started here inherits this environment: dev mode adds POST /reset_prefix_cache,
    # so each measured run starts with a cold prefix cache (see reset_prefix_cache).
    os.environ.setdefault("VLLM_SERVER_DEV_MODE", "1")
    with ensure_server(settings=settings, on_progress=on_progress) as managed:
        rec = managed.record
        if before is not None and before.healthy and before.record.pid == rec.pid:
            yield rec.endpoint, f"reused recorded server pid {rec.pid} at {rec.endpoint} (its own settings)"
        else:
            extra = " ".join(settings.extra_args) or "none"
            yield rec.endpoint, (f"started vLLM pid {rec.pid} at {rec.endpoint}: {rec.model}, "
                                 f"max_model_len={settings.max_model_len}, dtype={settings.resolved_dtype()}, "
                                 f"kv_cache_gib={settings.resolved_kv_cache_gib()}, enforce_eager={settings.enforce_eager}, "
                                 f"extra_args: {extra} (startup {rec.startup_seconds:.0f} s)")


def machine_note() -> str:
    """CPU count and vector ISA, load average and vLLM servers running (the bench's own included)."""
    load = os.getloadavg()
    isa = "AVX-512" if "avx512f" in machine_cpu_flags() else "no AVX-512"
    note = f"{os.cpu_count()} CPUs ({isa}), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    try:
        import psutil  # installed with vLLM; not a dependency of ponder itself
    except ImportError:
        return note
    servers = [p.pid for p in psutil.process_iter(["cmdline"])
               if "models.launcher" in (p.info["cmdline"] or []) and "serve" in (p.info["cmdline"] or [])]
    return f"{note}, vLLM servers running (this bench's included): {len(servers)} (pids {servers})"


async def snapshot(client: VLLMClient) -> dict[str, float]:
    """The server's ``vllm:*`` counters now."""
    return parse_metrics(await client.metrics())


async def reset_prefix_cache(client: VLLMClient) -> bool:
    """Empties the server's prefix cache (``POST /reset_prefix_cache``, vLLM dev mode only), so
    a run's hit rate is not inflated by an earlier run of the same prompts. False if refused."""
    for _ in range(5):  # refused while blocks are held by requests still finishing
        try:
            body, _, _ = await client.request("POST", "/reset_prefix_cache", endpoint=client.endpoints[0])
        except ModelServerError:
            return False
        if not isinstance(body, dict) or body.get("success", True):
            return True
        await asyncio.sleep(1.0)
    return False


# -- a measured run --------------------------------------------------------------------------


@dataclasses.dataclass
class RunMeasure:
    """A search run and what the server and the client process did during it."""

    label: str
    cfg: RunConfig
    rows: list[dict[str, Any]]
    summary: dict[str, float]
    wall_seconds: float
    peak_in_flight: int
    """Peak policy requests in flight at the client's gate (BoundedPolicy)."""
    before: dict[str, float]
    after: dict[str, float]
    samples: list[Sample]
    client_cpu_seconds: float
    """CPU seconds of this process (event loop, HTTP, JSON, tokenizer, traces) during the run."""
    cache_reset: bool = False
    """Whether the server's prefix cache was emptied before the run."""
    call_seconds: float = 0.0
    """Wall seconds of the whole ``run_config`` call: ``wall_seconds`` (the search, verdicts
    and trace writing included) plus opening the engine and the run directory."""

    @property
    def server_generated(self) -> float:
        """Tokens the server generated during the run (policy steps and reward-model replies)."""
        return counter_delta(self.before, self.after, GENERATED)

    @property
    def server_prompt(self) -> tuple[float, float]:
        """Prompt tokens the server took in during the run (each of a request's ``n`` sequences
        counts), and how many of them it computed (not prefix-cache hits)."""
        queried = counter_delta(self.before, self.after, PROMPT)
        return queried, queried - counter_delta(self.before, self.after, PREFIX_HITS)

    @property
    def shape(self) -> tuple[int, int, int] | None:
        """Per sequence at the server: mean prompt tokens, mean computed (uncached) prompt
        tokens and mean generated tokens; None when no sequence finished."""
        seqs = counter_delta(self.before, self.after, SEQUENCES)
        if seqs <= 0:
            return None
        queried, computed = self.server_prompt
        return round(queried / seqs), round(computed / seqs), max(1, round(self.server_generated / seqs))

    @property
    def tok_per_s(self) -> float:
        return self.server_generated / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def sustained_tok_per_s(self) -> float | None:
        return window_rate(self.samples)

    @property
    def queued_tok_per_s(self) -> float | None:
        return queued_rate(self.samples)

    @property
    def hit_rate_metrics(self) -> float | None:
        return cache_hit_rate(self.before, self.after)

    @property
    def hit_rate_usage(self) -> float | None:
        """Policy requests only: cached prompt tokens / prompt tokens from the replies' usage."""
        return ratio(sum(r["usage"]["cached_prompt_tokens"] for r in self.rows),
                     sum(r["usage"]["prompt_tokens"] for r in self.rows))

    @property
    def bookkeeping_share(self) -> float | None:
        """Sum over problems of search bookkeeping seconds / wall seconds of the run."""
        return ratio(sum(float(r.get("bookkeeping_seconds", 0.0)) for r in self.rows), self.wall_seconds)

    @property
    def peak_server_requests(self) -> float:
        """Peak running + waiting requests the server reported (policy and reward calls)."""
        return max((s.running + s.waiting for s in self.samples), default=0.0)


def _sample(t: float, base: Mapping[str, float], m: Mapping[str, float]) -> Sample:
    """One poll of ``/metrics`` (``m``), counters since ``base``."""
    return Sample(t, counter_delta(base, m, GENERATED), m.get(RUNNING, 0.0), m.get(WAITING, 0.0),
                  m.get(KV_USAGE, 0.0), counter_delta(base, m, PREEMPTIONS))


async def _poll(client: VLLMClient, base: Mapping[str, float], start: float,
                samples: list[Sample], interval_s: float) -> None:
    while True:
        with contextlib.suppress(ModelServerError):
            m = await snapshot(client)
            samples.append(_sample(time.perf_counter() - start, base, m))
        await asyncio.sleep(interval_s)


def _warm_tokenizer(cfg: RunConfig) -> None:
    """Loads the tokenizer once (importing transformers takes seconds of CPU) so that the
    run's client CPU time is the search's, not a one-off import's."""
    from models.embedded import embedded_checkpoint
    from models.tokenizer import HFTokenizer

    HFTokenizer(cfg.model.checkpoint or embedded_checkpoint())


async def measure_run(cfg: RunConfig, tasks: TaskSet, client: VLLMClient, label: str = "",
                      *, interval_s: float = 1.0,
                      inspect: Callable[[Path], Awaitable[None]] | None = None,
                      on_progress: Callable[[str], None] | None = None) -> RunMeasure:
    """Runs ``cfg`` on ``tasks`` in a temporary run dir (deleted after), measuring the server.

    ``client`` is only used to read ``/metrics`` of the first endpoint; the run opens its own.
    ``inspect`` reads the run directory (traces) after the measurement, before it is deleted.
    ``on_progress`` is told when the run starts, each tenth of its problems and its end.
    """
    name, total, finished = label or cfg.search.algorithm, len(tasks), [0]

    def on_row(row: dict[str, Any]) -> None:
        finished[0] += 1
        if on_progress is not None and finished[0] % max(1, total // 10) == 0 and finished[0] < total:
            on_progress(f"run {name}: {finished[0]}/{total} problems done")

    with tempfile.TemporaryDirectory(prefix="ponder-bench-") as tmp:
        cfg = override(cfg, {"run_dir": tmp})
        _warm_tokenizer(cfg)
        reset = await reset_prefix_cache(client)
        before = await snapshot(client)
        start = time.perf_counter()
        samples = [_sample(0.0, before, before)]
        poller = asyncio.create_task(_poll(client, before, start, samples, interval_s))
        cpu0, call0 = time.process_time(), time.perf_counter()
        try:
            if on_progress is not None:
                on_progress(f"run {name}: {total} problems, {cfg.search.algorithm}")
            # no warm-up: the server's counters around the run would count its tokens
            outcome = await run_config(cfg, on_row, tasks=tasks, warm_up_server=False)
        finally:
            cpu, call = time.process_time() - cpu0, time.perf_counter() - call0
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        after = await snapshot(client)
        samples.append(_sample(time.perf_counter() - start, before, after))
        if on_progress is not None:
            on_progress(f"run {name}: done in {outcome.wall_seconds:.1f} s")
        if inspect is not None:
            await inspect(Path(tmp))
    return RunMeasure(label or cfg.search.algorithm, cfg, outcome.rows,
                      summarize(outcome.rows, outcome.wall_seconds), outcome.wall_seconds,
                      outcome.peak_in_flight, before, after, samples, cpu, reset, call)


# -- reports ---------------------------------------------------------------------------------


def run_lines(m: RunMeasure) -> list[str]:
    """One measured run: accuracy, tokens on both sides, rates, prefix-cache hits, peaks, CPU."""
    s = m.summary
    return [
        f"[{m.label}] problems={s['problems']} accuracy={s['accuracy']:.3f} errors={s['errors']} "
        f"wall={m.wall_seconds:.1f}s",
        f"  policy tokens: generated={s['generated_tokens']} prompt={s['prompt_tokens']} calls={s['calls']}; "
        f"reward-model tokens={s['reward_tokens']}",
        f"  server tokens: generated {m.server_generated:.0f}, prompt {m.server_prompt[0]:.0f} "
        f"(computed, not cached: {m.server_prompt[1]:.0f})",
        f"  server generated tok/s: whole run {m.tok_per_s:.1f}, sustained (10-90% of tokens) "
        f"{fmt(m.sustained_tok_per_s)}, while requests waited at the server {fmt(m.queued_tok_per_s)}",
        f"  prefix-cache hit rate: /metrics {fmt(m.hit_rate_metrics, '.1%')}, "
        f"usage (policy) {fmt(m.hit_rate_usage, '.1%')}; cache emptied before the run: "
        f"{'yes' if m.cache_reset else 'NO (server not in dev mode: earlier runs may inflate hits)'}",
        f"  peak in flight: policy gate {m.peak_in_flight}, server running+waiting {m.peak_server_requests:.0f}; "
        f"KV cache peak {max((x.kv_usage for x in m.samples), default=0.0):.0%} used, "
        f"{counter_delta(m.before, m.after, PREEMPTIONS):.0f} preemptions",
        f"  bookkeeping share {fmt(m.bookkeeping_share, '.3%')}; client process CPU "
        f"{m.client_cpu_seconds:.1f}s = {fmt(m.client_cpu_seconds / m.wall_seconds if m.wall_seconds else None, '.1%')} of wall",
    ]


def timeline_lines(m: RunMeasure, every_s: float) -> list[str]:
    out = [f"  timeline (every {every_s:.0f} s): start s, server gen tok/s, max running, max waiting, "
           "max KV cache used, preemptions"]
    out += [f"    {t:6.0f} {rate:8.1f} {run:6.0f} {wait:6.0f} {kv:5.0%} {pre:5.0f}"
            for t, rate, run, wait, kv, pre in timeline(m.samples, every_s)]
    return out


def throughput_lines(before: list[BenchRow], after: list[BenchRow], m: RunMeasure, shaped: float | None,
                     concurrency: list[int]) -> list[str]:
    """``bench throughput``'s report: the saturation loads around the run, the run, the ratios."""
    out = ["-- saturation load before and after the search (benchmarks.server: n=1 requests, 32-token random "
           "prompts, 128 generated tokens, ignore_eos)", format_rows(before + after)]
    peaks = [max(r.tokens_per_second for r in rows if r.load == "throughput") for rows in (before, after)]
    saturated = sum(peaks) / 2
    out.append(f"saturated generated tok/s: {saturated:.1f} (before {peaks[0]:.1f}, after {peaks[1]:.1f})")
    if abs(peaks[0] - peaks[1]) / max(peaks) > 0.15:
        out.append(f"WARNING: the saturated figure moved {abs(peaks[0] - peaks[1]) / max(peaks):.0%} during the bench "
                   f"(other load on the machine?); ratios to it are unreliable. Now: {machine_note()}")
    out.append(f"-- search run: {m.summary['problems']} problems, all at once")
    out += run_lines(m) + timeline_lines(m, 5.0)
    sustained = m.sustained_tok_per_s or 0.0
    out += ["-- ratios (targets)",
            f"sustained / saturated tok/s: {fmt(ratio(sustained, saturated), '.2f')}   (>= 0.85); "
            f"whole run: {fmt(ratio(m.tok_per_s, saturated), '.2f')}; while requests waited: "
            f"{fmt(ratio(m.queued_tok_per_s or 0.0, saturated), '.2f')}"]
    if shaped is not None and m.shape is not None:
        p_tok, c_tok, g_tok = m.shape
        out.append(f"  the same server under a load of the search's shape ({p_tok}-token prompts, the last {c_tok} "
                   f"uncached, {g_tok} generated, c={max(concurrency)}): {shaped:.1f} tok/s; sustained / that: "
                   f"{fmt(ratio(sustained, shaped), '.2f')} (the scheduler's share of the gap; the rest is "
                   f"what this prompt and reply shape costs the server)")
    return out + [f"prefix-cache hit rate (/metrics): {fmt(m.hit_rate_metrics, '.1%')}   (>= 80%)",
                  f"bookkeeping share: {fmt(m.bookkeeping_share, '.3%')}   (<= 1%)",
                  f"peak requests in flight: {m.peak_in_flight}"]


def compare_lines(bon: RunMeasure, beam: RunMeasure) -> list[str]:
    """``bench compare``'s report: both runs, then beam / best-of-N wall per generated token."""
    policy = normalised_wall_ratio(beam.wall_seconds, beam.summary["generated_tokens"],
                                   bon.wall_seconds, bon.summary["generated_tokens"])
    server_side = normalised_wall_ratio(beam.wall_seconds, beam.server_generated, bon.wall_seconds, bon.server_generated)
    tokens = beam.summary["generated_tokens"], bon.summary["generated_tokens"]
    return [*run_lines(bon), *run_lines(beam), "-- ratio (target <= 1.3)",
            f"policy tokens: beam {tokens[0]} / best-of-N {tokens[1]} = {fmt(tokens[0] / max(tokens[1], 1), '.2f')}",
            f"wall: beam {beam.wall_seconds:.1f}s, best-of-N {bon.wall_seconds:.1f}s",
            f"beam/BoN wall per policy-generated token: {fmt(policy, '.2f')}x   (<= 1.3x); "
            f"per server-generated token (incl. self-eval replies): {fmt(server_side, '.2f')}x"]
