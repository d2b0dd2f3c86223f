"""``ponder bench flat``: ponder's self-consistency against a plain client sending the same requests.

Both sides send, for each problem, one ``/v1/completions`` request: the chat-template token
ids of the question (the run's system prompt), ``n = num_samples``, ``max_tokens =
steps.solution_tokens`` (the config has no token budget, so nothing caps it further), the
run's temperature and top_p, and no stop strings; ``max_concurrent_problems`` problems are in
progress at once. ponder's side is a measured run (:func:`benchmarks.search_runs.measure_run`);
the other is :func:`benchmarks.plain_client.run_plain`.

The runs go plain, ponder, plain (``--repeats K``: plain, then K times ponder, plain): the
two plain runs around each ponder run bracket it, so a machine that drifts shows as a gap
between them, and that ponder run's tok/s is divided by their mean; with K > 1 the report
gives the median of the K ratios. The server's
prefix cache is emptied before each run (when the server allows it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from models.client import VLLMClient, served_model
from benchmarks.metrics import GENERATED, counter_delta, fmt, ratio
from benchmarks.plain_client import PlainRun, run_plain
from benchmarks.search_runs import RunMeasure, machine_note, measure_run, reset_prefix_cache, snapshot
from ponder.config import RunConfig
from search.context import Budget, SamplingDefaults
from search.protocols import ConfigError
from verifiers.tasks import TaskSet

PONDER_FIELDS: Mapping[str, Any] = {"include_stop_str_in_output": True, "return_token_ids": True}
"""What ponder's requests carry beyond the plain ones (it keeps the token ids)."""


@dataclasses.dataclass(frozen=True)
class FlatRequests:
    """The requests of one flat run: one per problem, all with the same options."""

    prompts: list[list[int]]
    n: int
    max_tokens: int
    temperature: float
    top_p: float
    concurrency: int
    """Problems in progress at once (one request in flight each)."""


def flat_requests(cfg: RunConfig, tasks: TaskSet) -> FlatRequests:
    """The requests ponder's self-consistency sends for ``tasks`` under ``cfg``.

    Raises:
        ConfigError: ``cfg`` is not self-consistency, has a budget (a token budget caps each
            request's ``max_tokens`` by the problem's share) or a seed (ponder derives one per
            request; the plain client sends none).
    """
    from models.embedded import embedded_checkpoint
    from models.tokenizer import HFTokenizer

    search = cfg.search
    if search.algorithm != "self_consistency":
        raise ConfigError("search.algorithm", search.algorithm, "ponder bench flat runs self_consistency")
    if cfg.budget != Budget():
        raise ConfigError("budget", cfg.budget.model_dump(exclude_none=True),
                          "ponder bench flat needs a config without a budget")
    if cfg.seed is not None:
        raise ConfigError("seed", cfg.seed, "ponder bench flat compares unseeded requests")
    tokenizer = HFTokenizer(cfg.model.checkpoint or embedded_checkpoint())
    prompts = [tokenizer.chat_prompt(p.question, cfg.model.system_prompt) for p in tasks.problems]
    temperature = cfg.temperature if search.temperature is None else search.temperature
    return FlatRequests(prompts, search.num_samples, cfg.steps.solution_tokens, temperature,
                        SamplingDefaults().top_p, cfg.max_concurrent_problems)


@dataclasses.dataclass(frozen=True)
class PlainMeasure:
    """A plain-client run and what the server counted during it."""

    run: PlainRun
    server_generated: float
    cache_reset: bool


def _rate(m: RunMeasure) -> float:
    """ponder's generated policy tokens per second of search wall."""
    return m.summary["generated_tokens"] / m.wall_seconds if m.wall_seconds > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class FlatMeasure:
    """The runs, in the order they ran: plain, ponder, plain, ponder, ..., plain (one more
    plain run than ponder runs, so each ponder run is bracketed by two plain ones)."""

    plain: tuple[PlainMeasure, ...]
    ponder: tuple[RunMeasure, ...]

    def __post_init__(self) -> None:
        if not self.ponder or len(self.plain) != len(self.ponder) + 1:
            raise ValueError(f"need k >= 1 ponder runs and k + 1 plain runs, got {len(self.ponder)} and {len(self.plain)}")

    @property
    def plain_tok_per_s(self) -> float:
        """Mean generated tok/s of the plain runs."""
        return sum(p.run.tok_per_s for p in self.plain) / len(self.plain)

    @property
    def ponder_tok_per_s(self) -> float:
        """Mean of ponder's runs' generated tok/s (search wall)."""
        return sum(_rate(m) for m in self.ponder) / len(self.ponder)

    def bracket(self, i: int) -> float:
        """Mean tok/s of the two plain runs around ponder run ``i``."""
        return (self.plain[i].run.tok_per_s + self.plain[i + 1].run.tok_per_s) / 2

    @property
    def ratios(self) -> list[float | None]:
        """Each ponder run's tok/s over the mean of the plain runs on either side of it."""
        return [ratio(_rate(m), self.bracket(i)) for i, m in enumerate(self.ponder)]

    @property
    def median_ratio(self) -> float | None:
        """The median of :attr:`ratios` (None if a bracket ran no tokens)."""
        values = sorted(r for r in self.ratios if r is not None)
        if not values:
            return None
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


async def measure_plain(client: VLLMClient, reqs: FlatRequests,
                        extra: Mapping[str, Any] | None = None) -> PlainMeasure:
    """Runs the plain client on ``reqs`` against ``client``'s first endpoint (cold prefix cache),
    with ponder's per-request timeout."""
    reset = await reset_prefix_cache(client)
    before = await snapshot(client)
    run = await run_plain(client.endpoints[0], client.model, reqs.prompts, n=reqs.n, max_tokens=reqs.max_tokens,
                          temperature=reqs.temperature, top_p=reqs.top_p, concurrency=reqs.concurrency,
                          extra=extra, timeout_s=client.timeout)
    after = await snapshot(client)
    return PlainMeasure(run, counter_delta(before, after, GENERATED), reset)


async def measure_flat(cfg: RunConfig, tasks: TaskSet, reqs: FlatRequests, endpoint: str,
                       ponder_fields: bool = False, repeats: int = 1) -> FlatMeasure:
    """plain, then ``repeats`` times (ponder, plain) on ``endpoint`` (``cfg`` must already
    point at it)."""
    if repeats < 1:
        raise ConfigError("repeats", repeats, "must be >= 1")
    extra = PONDER_FIELDS if ponder_fields else None
    async with VLLMClient(endpoint, cfg.model.model or await served_model(endpoint),
                          timeout=cfg.model.timeout_s) as client:
        plain = [await measure_plain(client, reqs, extra)]
        ponder = []
        for i in range(repeats):
            ponder.append(await measure_run(cfg, tasks, client, f"ponder-{i + 1}"))
            plain.append(await measure_plain(client, reqs, extra))
    return FlatMeasure(tuple(plain), tuple(ponder))


def flat_lines(cfg: RunConfig, reqs: FlatRequests, fm: FlatMeasure, ponder_fields: bool) -> list[str]:
    """The report: settings, one row per run in the order they ran, each ponder run's ratio
    to its bracketing plain runs and their median, ponder's accuracy."""
    steps = cfg.steps
    fields = "model, prompt (token ids), n, max_tokens, temperature, top_p, stop=[]"
    more = ", ".join(f"{k}={v}" for k, v in PONDER_FIELDS.items())
    resets = [p.cache_reset for p in fm.plain] + [m.cache_reset for m in fm.ponder]
    order = ", ".join(["plain"] + ["ponder, plain"] * len(fm.ponder))
    lines = [
        f"settings: {len(reqs.prompts)} problems, one request each: n={reqs.n}, max_tokens={reqs.max_tokens} "
        f"(min(steps.max_solution_tokens {steps.max_solution_tokens}, max_depth {steps.max_depth} x "
        f"{steps.step_tokens})), temperature={reqs.temperature}, top_p={reqs.top_p}, stop=[]; "
        f"{reqs.concurrency} problems at once (ponder: max_concurrent_problems; model.max_in_flight "
        f"{cfg.model.max_in_flight})",
        f"plain requests: {fields}" + (f", {more} (as ponder's)" if ponder_fields else
                                       f" (ponder's also carry {more}; --ponder-fields sends them too)"),
        f"order: {order}; prefix cache emptied before each run: "
        f"{'yes' if all(resets) else 'NO (server not in dev mode)'}",
        f"{'run':<26}{'gen tok':>9}{'calls':>7}{'wall s':>9}{'tok/s':>9}{'server gen tok':>16}",
    ]

    def row(name: str, tokens: float, calls: float, wall: float, server: float) -> str:
        rate = tokens / wall if wall > 0 else 0.0
        return f"{name:<26}{tokens:>9.0f}{calls:>7.0f}{wall:>9.1f}{rate:>9.1f}{server:>16.0f}"

    def plain_row(i: int) -> str:
        p = fm.plain[i]
        return row(f"plain {i + 1}", p.run.generated_tokens, p.run.calls, p.run.wall_seconds, p.server_generated)

    lines.append(plain_row(0))
    for i, m in enumerate(fm.ponder):
        s = m.summary
        lines.append(row(f"ponder {i + 1} (search wall)", s["generated_tokens"], s["calls"], m.wall_seconds,
                         m.server_generated))
        lines.append(row(f"ponder {i + 1} (run_config wall)", s["generated_tokens"], s["calls"], m.call_seconds,
                         m.server_generated))
        lines.append(plain_row(i + 1))
    for i, m in enumerate(fm.ponder):
        a, b = fm.plain[i].run.tok_per_s, fm.plain[i + 1].run.tok_per_s
        whole = m.summary["generated_tokens"] / m.call_seconds if m.call_seconds > 0 else 0.0
        line = (f"ponder {i + 1} tok/s / plain tok/s (mean of plain {i + 1} and {i + 2}, {fm.bracket(i):.1f}): "
                f"{fmt(fm.ratios[i], '.3f')} (search wall), "
                f"{fmt(ratio(whole, fm.bracket(i)), '.3f')} (whole run_config wall)")
        lines.append(line)
        if max(a, b) > 0 and abs(a - b) / max(a, b) > 0.15:
            lines.append(f"WARNING: plain {i + 1} and {i + 2} differ by {abs(a - b) / max(a, b):.0%} "
                         f"(other load on the machine?); that ratio is unreliable. Now: {machine_note()}")
    if len(fm.ponder) > 1:
        lines.append(f"median ratio over {len(fm.ponder)} ponder runs (search wall): {fmt(fm.median_ratio, '.3f')}")
    for i, m in enumerate(fm.ponder):
        s = m.summary
        lines.append(f"ponder {i + 1} accuracy: {s['accuracy']:.3f} over {s['problems']:.0f} problems, "
                     f"errors {s['errors']:.0f}")
    return lines
