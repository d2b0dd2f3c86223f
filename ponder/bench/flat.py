"""``ponder bench flat``: ponder's self-consistency against a plain client sending the same requests.

Both sides send, for each problem, one ``/v1/completions`` request: the chat-template token
ids of the question (the run's system prompt), ``n = num_samples``, ``max_tokens =
steps.solution_tokens`` (the config has no token budget, so nothing caps it further), the
run's temperature and top_p, and no stop strings; ``max_concurrent_problems`` problems are in
progress at once. ponder's side is a measured run (:func:`ponder.bench.search_runs.measure_run`);
the other is :func:`ponder.bench.plain_client.run_plain`.

The runs go plain, ponder, plain: the two plain runs bracket ponder's, so a machine that
drifts shows as a gap between them, and ponder's tok/s is divided by their mean. The server's
prefix cache is emptied before each run (when the server allows it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from models.client import VLLMClient, served_model
from ponder.bench.metrics import GENERATED, counter_delta, fmt, ratio
from ponder.bench.plain_client import PlainRun, run_plain
from ponder.bench.search_runs import RunMeasure, machine_note, measure_run, reset_prefix_cache, snapshot
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


@dataclasses.dataclass(frozen=True)
class FlatMeasure:
    """The three runs, in the order they ran: plain, ponder, plain."""

    plain: tuple[PlainMeasure, PlainMeasure]
    ponder: RunMeasure

    @property
    def plain_tok_per_s(self) -> float:
        """Mean generated tok/s of the two plain runs."""
        return sum(p.run.tok_per_s for p in self.plain) / len(self.plain)

    @property
    def ponder_tok_per_s(self) -> float:
        """ponder's generated policy tokens per second of search wall."""
        m = self.ponder
        return m.summary["generated_tokens"] / m.wall_seconds if m.wall_seconds > 0 else 0.0


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
                       ponder_fields: bool = False) -> FlatMeasure:
    """Plain, ponder, plain on ``endpoint`` (``cfg`` must already point at it)."""
    extra = PONDER_FIELDS if ponder_fields else None
    async with VLLMClient(endpoint, cfg.model.model or await served_model(endpoint),
                          timeout=cfg.model.timeout_s) as client:
        first = await measure_plain(client, reqs, extra)
        ponder = await measure_run(cfg, tasks, client, "ponder")
        second = await measure_plain(client, reqs, extra)
    return FlatMeasure((first, second), ponder)


def flat_lines(cfg: RunConfig, reqs: FlatRequests, fm: FlatMeasure, ponder_fields: bool) -> list[str]:
    """The report: settings, one row per run, the ratio, ponder's accuracy."""
    steps, m, s = cfg.steps, fm.ponder, fm.ponder.summary
    fields = "model, prompt (token ids), n, max_tokens, temperature, top_p, stop=[]"
    more = ", ".join(f"{k}={v}" for k, v in PONDER_FIELDS.items())
    resets = [p.cache_reset for p in fm.plain] + [m.cache_reset]
    lines = [
        f"settings: {len(reqs.prompts)} problems, one request each: n={reqs.n}, max_tokens={reqs.max_tokens} "
        f"(min(steps.max_solution_tokens {steps.max_solution_tokens}, max_depth {steps.max_depth} x "
        f"{steps.step_tokens})), temperature={reqs.temperature}, top_p={reqs.top_p}, stop=[]; "
        f"{reqs.concurrency} problems at once (ponder: max_concurrent_problems; model.max_in_flight "
        f"{cfg.model.max_in_flight})",
        f"plain requests: {fields}" + (f", {more} (as ponder's)" if ponder_fields else
                                       f" (ponder's also carry {more}; --ponder-fields sends them too)"),
        f"order: plain, ponder, plain; prefix cache emptied before each run: "
        f"{'yes' if all(resets) else 'NO (server not in dev mode)'}",
        f"{'run':<26}{'gen tok':>9}{'calls':>7}{'wall s':>9}{'tok/s':>9}{'server gen tok':>16}",
    ]

    def row(name: str, tokens: float, calls: float, wall: float, server: float) -> str:
        rate = tokens / wall if wall > 0 else 0.0
        return f"{name:<26}{tokens:>9.0f}{calls:>7.0f}{wall:>9.1f}{rate:>9.1f}{server:>16.0f}"

    first, second = fm.plain
    lines.append(row("plain 1", first.run.generated_tokens, first.run.calls, first.run.wall_seconds,
                     first.server_generated))
    lines.append(row("ponder (search wall)", s["generated_tokens"], s["calls"], m.wall_seconds, m.server_generated))
    lines.append(row("ponder (run_config wall)", s["generated_tokens"], s["calls"], m.call_seconds,
                     m.server_generated))
    lines.append(row("plain 2", second.run.generated_tokens, second.run.calls, second.run.wall_seconds,
                     second.server_generated))
    rates = [p.run.tok_per_s for p in fm.plain]
    if max(rates) > 0 and abs(rates[0] - rates[1]) / max(rates) > 0.15:
        lines.append(f"WARNING: the two plain runs differ by {abs(rates[0] - rates[1]) / max(rates):.0%} "
                     f"(other load on the machine?); the ratio is unreliable. Now: {machine_note()}")
    whole = s["generated_tokens"] / m.call_seconds if m.call_seconds > 0 else 0.0
    lines.append(f"ponder tok/s / plain tok/s (mean of the plain runs, {fm.plain_tok_per_s:.1f}): "
                 f"{fmt(ratio(fm.ponder_tok_per_s, fm.plain_tok_per_s), '.3f')} (search wall), "
                 f"{fmt(ratio(whole, fm.plain_tok_per_s), '.3f')} (whole run_config wall)")
    lines.append(f"ponder accuracy: {s['accuracy']:.3f} over {s['problems']:.0f} problems, errors {s['errors']:.0f}")
    return lines
