"""``ponder bench label``: what Math-Shepherd and OmegaPRM labels cost on the same trees.

Every problem is searched once (label mode: its context carries the oracle) and its end
leaves are verified once. Then two phases run one after the other, each over all searched
problems (``concurrency`` problems at once) and timed on its own: Math-Shepherd
(``per_step``, N completions per step prefix), then OmegaPRM (screening with
``screen_rollouts`` root completions, then ``binary_search`` with k per probe). Each
generator gets its own fresh :class:`~search.labels.rollouts.Rollouts` per problem (no cache
shared between the two) and, when the run is seeded, its own seed, on a copy of the problem's
context whose policy is metered: answered requests, completions (sum of ``n``) and generated
tokens, the root prefix's requests (OmegaPRM's screening) apart.

:func:`measure_labels` takes an open engine (a scripted one in tests); :func:`run_label_bench`
adds the server: saturation loads before and after, the prefix cache emptied before each phase.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks.metrics import fmt, ratio
from ponder.config import RunConfig, parse_run_config
from search.context import SearchContext
from search.labels import LabelConfig, LabelInputs, StepLabel, run_generator, verify_end_leaves
from search.labels.math_shepherd import MathShepherdConfig
from search.labels.omega_prm import OmegaPrmConfig
from search.labels.rollouts import LabelStats, Rollouts, gather_all
from search.protocols import ConfigError, EngineFault, Generation, Policy, Problem, Sampling, Usage, Verdict
from search.trace import SearchResult
from verifiers.tasks import TaskSet

StepKey = tuple[str, tuple[str, ...], str]
"""(problem id, prefix step texts, step text): what makes two labels the same step."""


def label_config(num_problems: int = 100, num_samples: int = 4) -> RunConfig:
    """The preset: chain_sum at the embedded model's edge (2-3 terms of 1-2 digits), blank-line
    steps, self-consistency with ``num_samples`` chains (trees with right and wrong leaves)."""
    from benchmarks.suite import STEPS, chain_sum

    return parse_run_config({"name": "bench-label", "mode": "label", "tasks": chain_sum(num_problems, 13, 2),
                             "steps": STEPS, "search": {"algorithm": "self_consistency", "num_samples": num_samples}})


@dataclasses.dataclass(frozen=True)
class LabelBenchSettings:
    """The generators' settings and how many problems run at once."""

    num_rollouts: int = 8
    """Math-Shepherd's N per step prefix."""
    k: int = 8
    """OmegaPRM's completions per probed prefix."""
    screen_rollouts: int = 32
    """OmegaPRM's root completions for screening (spec 08 §3.1)."""
    max_rollout_tokens: int | None = 160
    concurrency: int = 32
    """Problems searched (and labelled, in each phase) at once."""

    def generators(self) -> tuple[MathShepherdConfig, OmegaPrmConfig]:
        """Math-Shepherd (per_step, N) and OmegaPRM (binary_search, k, screening), validated."""
        return (MathShepherdConfig(num_rollouts=self.num_rollouts, max_rollout_tokens=self.max_rollout_tokens),
                OmegaPrmConfig(num_rollouts=self.k, screen_rollouts=self.screen_rollouts, mode="binary_search",
                               max_rollout_tokens=self.max_rollout_tokens))


@dataclasses.dataclass
class RolloutCount:
    """Answered rollout requests, completions asked for (sum of ``n``), generated tokens."""

    requests: int = 0
    completions: int = 0
    generated_tokens: int = 0

    def add(self, other: RolloutCount, sign: int = 1) -> RolloutCount:
        """Adds (``sign`` -1: subtracts) ``other`` in place; returns ``self``."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + sign * getattr(other, f.name))
        return self


class MeteredPolicy:
    """Passes requests to ``policy`` and counts the answered ones in ``total``; requests from
    the bare ``root_prefix`` (OmegaPRM's screening) also in ``root``."""

    def __init__(self, policy: Policy, root_prefix: Sequence[int]) -> None:
        self.policy, self.root_prefix = policy, tuple(root_prefix)
        self.total, self.root = RolloutCount(), RolloutCount()

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        generation = await self.policy.propose(prefix, sampling)
        count = RolloutCount(1, sampling.n, generation.usage.generated_tokens)
        self.total.add(count)
        if tuple(prefix) == self.root_prefix:
            self.root.add(count)
        return generation


@dataclasses.dataclass
class GeneratorMeasure:
    """One generator over all searched problems (one phase)."""

    name: str
    problems: int
    wall_seconds: float
    labels: list[StepLabel] = dataclasses.field(default_factory=list)
    total: RolloutCount = dataclasses.field(default_factory=RolloutCount)
    screening: RolloutCount = dataclasses.field(default_factory=RolloutCount)
    """Requests from the root prefix (OmegaPRM's screening; included in ``total``)."""
    screened_out: Counter[str] = dataclasses.field(default_factory=Counter)
    searches: int = 0
    skipped: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    cache_reset: bool | None = None
    """Whether the server's prefix cache was emptied before the phase (None: not tried)."""

    @property
    def steps(self) -> dict[StepKey, StepLabel]:
        """Distinct labelled steps (identical chains repeat a step; the first label is kept)."""
        out: dict[StepKey, StepLabel] = {}
        for x in self.labels:
            out.setdefault((x.problem_id, tuple(x.prefix), x.step), x)
        return out


def agreement(ms: GeneratorMeasure, omega: GeneratorMeasure) -> dict[str, Any]:
    """Hard labels of Math-Shepherd vs OmegaPRM on the same problem, prefix texts and step text.

    Returns:
        ``shared`` single steps both labelled, ``agree``, ``rate`` (agree / shared; None if
        nothing is shared), ``confusion`` (``ms_T_omega_F`` ...); ``sampled_shared`` and
        ``sampled_agree``: those both labelled from rollouts (a wrong solution's last step is
        labelled by its own verdict on both sides, so it always agrees); ``omega_spans``
        (OmegaPRM labels of multi-step spans: no single step to compare) and
        ``omega_unmatched`` (OmegaPRM single steps Math-Shepherd did not label).
    """
    ms_steps, confusion = ms.steps, Counter[str]()
    spans = unmatched = sampled = sampled_agree = 0
    for key, x in omega.steps.items():
        start, end = x.extra.get("span", [0, 1])
        other = ms_steps.get(key)
        if end - start > 1:
            spans += 1
        elif other is None or other.label is None or x.label is None:
            unmatched += 1
        else:
            confusion[f"ms_{'T' if other.label else 'F'}_omega_{'T' if x.label else 'F'}"] += 1
            if x.rollouts and other.rollouts:
                sampled, sampled_agree = sampled + 1, sampled_agree + (x.label == other.label)
    shared, agree = sum(confusion.values()), confusion["ms_T_omega_T"] + confusion["ms_F_omega_F"]
    return {"shared": shared, "agree": agree, "rate": ratio(agree, shared), "confusion": dict(sorted(confusion.items())),
            "sampled_shared": sampled, "sampled_agree": sampled_agree, "omega_spans": spans,
            "omega_unmatched": unmatched}


@dataclasses.dataclass
class LabelRun:
    """The search phase and the two generator phases."""

    problems: int
    search_errors: int
    leaves: Counter[str]
    """End-leaf verdict statuses over all trees."""
    search_usage: Usage
    search_wall_seconds: float
    ms: GeneratorMeasure
    omega: GeneratorMeasure


async def _phase(config: LabelConfig, searched: list[tuple[SearchContext, dict[int, Verdict]]],
                 settings: LabelBenchSettings, model: str, seed_offset: int) -> GeneratorMeasure:
    """Runs one generator on every searched problem, each with its own ``Rollouts``."""
    gate = asyncio.Semaphore(settings.concurrency)

    async def one(ctx: SearchContext, verdicts: dict[int, Verdict]):
        async with gate:
            own = copy.copy(ctx)  # the same tree and oracle; its own metered policy (and seed)
            own.policy = meter = MeteredPolicy(ctx.policy, ctx.tree.root_prefix)
            if ctx.sampling.seed is not None:
                own.sampling = ctx.sampling.model_copy(update={"seed": ctx.sampling.seed + seed_offset})
            inputs = LabelInputs(own, model, verdicts, Rollouts(own, max_tokens=settings.max_rollout_tokens))
            stats = LabelStats()
            try:
                return await run_generator(inputs, config, stats), stats, meter
            except EngineFault:
                raise
            except Exception as exc:  # one problem's failure is counted; the phase goes on
                return exc, stats, meter

    start = time.perf_counter()
    results = await gather_all(*(one(ctx, v) for ctx, v in searched))
    m = GeneratorMeasure(config.generator, len(searched), time.perf_counter() - start)
    for labels, stats, meter in results:
        if isinstance(labels, Exception):
            m.errors.append(f"{type(labels).__name__}: {labels}")
        else:
            m.labels.extend(labels)
        m.total.add(meter.total)
        m.screening.add(meter.root)
        m.searches, m.skipped = m.searches + stats.searches, m.skipped + stats.skipped
        m.screened_out.update([stats.screened_out] if stats.screened_out else [])
    return m


async def measure_labels(cfg: RunConfig, tasks: TaskSet, engine: Any, settings: LabelBenchSettings,
                         before_phase: Callable[[str], Awaitable[bool]] | None = None) -> LabelRun:
    """Searches every problem once, verifies its end leaves once, then labels all trees with
    Math-Shepherd, then all with OmegaPRM (see the module docstring).

    Args:
        cfg: The run config (mode ``label``); its search makes the trees.
        tasks: The problems and their golds.
        engine: An open :class:`ponder.engine.Engine` (or a scripted one).
        settings: Generators and concurrency.
        before_phase: Awaited with the generator's name before its phase; returns whether
            the server's prefix cache was emptied.

    Raises:
        ConfigError: ``cfg.mode`` is not ``label``.
        EngineFault: The engine is gone.
    """
    from ponder.run import make_context
    from search.scheduler import solve_all

    if cfg.mode != "label":
        raise ConfigError("mode", cfg.mode, "ponder bench label needs mode: label (rollouts read gold answers)")
    index = {p.id: i for i, p in enumerate(tasks.problems)}
    contexts: dict[str, SearchContext] = {}

    def make_ctx(p: Problem) -> SearchContext:
        contexts[p.id] = make_context(cfg, engine, p, tasks, index[p.id])
        return contexts[p.id]

    start = time.perf_counter()
    outcomes = await solve_all(tasks.problems, make_ctx, cfg.search, settings.concurrency)
    search_wall = time.perf_counter() - start
    done = [contexts[p.id] for p, o in zip(tasks.problems, outcomes, strict=True) if isinstance(o, SearchResult)]
    verdicts = await gather_all(*(verify_end_leaves(ctx) for ctx in done))
    searched = list(zip(done, verdicts, strict=True))
    phases = []
    for offset, config in enumerate(settings.generators()):
        reset = await before_phase(config.generator) if before_phase is not None else None
        phases.append(await _phase(config, searched, settings, engine.model_name, 7919 * offset))
        phases[-1].cache_reset = reset
    usage = Usage()
    for ctx in done:
        usage.add(ctx.usage)
    leaves = Counter(v.status.value for vs in verdicts for v in vs.values())
    return LabelRun(len(tasks.problems), len(tasks.problems) - len(done), leaves, usage, search_wall, *phases)


async def run_label_bench(cfg: RunConfig, tasks: TaskSet, settings: LabelBenchSettings, endpoint: str,
                          concurrencies: Sequence[int]) -> tuple[LabelRun, tuple[float, float]]:
    """:func:`measure_labels` on ``endpoint`` (``cfg`` points at it) between two saturation
    loads (:func:`benchmarks.server.bench_server_async`, 128 tokens, max over
    ``concurrencies``); returns the run and the saturated tok/s before and after it."""
    import ponder.engine as engine_module
    from models.client import VLLMClient, served_model
    from benchmarks.search_runs import reset_prefix_cache
    from benchmarks.server import bench_server_async

    async with VLLMClient(endpoint, cfg.model.model or await served_model(endpoint),
                          timeout=cfg.model.timeout_s) as client:
        async def saturated(seed: int) -> float:
            rows = await bench_server_async(client, tuple(concurrencies), 128, seed=seed)
            return max(r.tokens_per_second for r in rows if r.load == "throughput")

        before = await saturated(0)
        async with engine_module.open_engine(cfg.model) as engine:
            run = await measure_labels(cfg, tasks, engine, settings, lambda _: reset_prefix_cache(client))
        return run, (before, await saturated(1))


def _figures(m: GeneratorMeasure, count: RolloutCount, saturated: float | None) -> dict[str, Any]:
    """Counts, per-step figures, label balance and rates of one generator (or a part of it)."""
    steps = list(m.steps.values())
    hard = [x.label for x in steps if x.label is not None]
    soft = [x.value for x in steps if x.value is not None]
    rate = ratio(count.generated_tokens, m.wall_seconds)
    return {"problems": m.problems, "problems_labelled": len({x.problem_id for x in m.labels}),
            "labels": len(m.labels), "steps": len(steps), **dataclasses.asdict(count),
            "completions_per_step": ratio(count.completions, len(steps)),
            "tokens_per_step": ratio(count.generated_tokens, len(steps)),
            "true_share": ratio(sum(hard), len(hard)), "mean_value": ratio(sum(soft), len(soft)),
            "wall_seconds": m.wall_seconds, "tok_per_s": rate, "tok_per_s_of_saturated": ratio(rate or 0, saturated or 0),
            "skipped": m.skipped, "errors": m.errors, "cache_reset": m.cache_reset}


def label_summary(run: LabelRun, settings: LabelBenchSettings,
                  saturated: tuple[float, float] | None = None) -> dict[str, Any]:
    """The bench's numbers as JSON-ready data (``saturated``: tok/s before and after)."""
    sat = sum(saturated) / 2 if saturated else None
    ms, om = run.ms, run.omega
    bare = RolloutCount().add(om.total).add(om.screening, -1)
    out: dict[str, Any] = {
        "settings": dataclasses.asdict(settings),
        "search": {"problems": run.problems, "errors": run.search_errors, "end_leaves": dict(run.leaves),
                   "requests": run.search_usage.calls, "generated_tokens": run.search_usage.generated_tokens,
                   "wall_seconds": run.search_wall_seconds},
        "saturated_tok_per_s": sat, "saturated_before_after": list(saturated) if saturated else None,
        "math_shepherd": _figures(ms, ms.total, sat),
        "omega_prm": {**_figures(om, om.total, sat), "screened_out": dict(om.screened_out),
                      "binary_searches": om.searches, "screening": dataclasses.asdict(om.screening),
                      "without_screening": {**_figures(om, bare, None), "wall_seconds": None, "tok_per_s": None}},
        "agreement": agreement(ms, om),
    }
    theirs, keys = out["math_shepherd"], ("completions", "generated_tokens", "requests", "completions_per_step",
                                          "tokens_per_step", "wall_seconds")
    for name, mine in (("", out["omega_prm"]), ("_without_screening", out["omega_prm"]["without_screening"])):
        out["omega_over_ms" + name] = {k: ratio(mine[k] or 0, theirs[k] or 0) for k in keys if mine[k] is not None}
    return out


def label_lines(s: dict[str, Any]) -> list[str]:
    """The printed report of a :func:`label_summary`."""
    st, se, ms, om, ag = s["settings"], s["search"], s["math_shepherd"], s["omega_prm"], s["agreement"]
    resets = {True: "yes", False: "NO (server not in dev mode)", None: "not tried"}
    lines = [
        f"settings: Math-Shepherd per_step N={st['num_rollouts']}; OmegaPRM binary_search k={st['k']}, "
        f"screen_rollouts={st['screen_rollouts']} (spec 08 §3.1), after_first_error=drop; "
        f"max_rollout_tokens={st['max_rollout_tokens']}; {st['concurrency']} problems at once",
        "order: every problem searched once, its end leaves verified once; then all problems' Math-Shepherd "
        "labelling, then all problems' OmegaPRM labelling, each phase on its own wall clock; each generator its own "
        f"fresh Rollouts per problem (no shared cache); prefix cache emptied before each phase: {resets[ms['cache_reset']]}"
        f", {resets[om['cache_reset']]}",
        f"search: {se['problems']} problems ({se['errors']} errors), end leaves {se['end_leaves']}, "
        f"{se['requests']} requests, {se['generated_tokens']} generated tokens, {se['wall_seconds']:.1f} s",
        f"saturated generated tok/s: {fmt(s['saturated_tok_per_s'])} (before, after: {s['saturated_before_after']})",
        f"{'generator':<24}{'probs':>6}{'steps':>7}{'labels':>7}{'reqs':>7}{'rollouts':>9}{'gen tok':>9}"
        f"{'roll/step':>10}{'tok/step':>9}{'True':>6}{'value':>6}{'wall s':>8}{'tok/s':>9}{'/sat':>6}",
    ]
    for name, g in (("math_shepherd", ms), ("omega_prm", om), ("omega_prm w/o screening", om["without_screening"])):
        lines.append(f"{name:<24}{g['problems']:>6}{g['steps']:>7}{g['labels']:>7}{g['requests']:>7}"
                     f"{g['completions']:>9}{g['generated_tokens']:>9}{fmt(g['completions_per_step'], '.2f'):>10}"
                     f"{fmt(g['tokens_per_step']):>9}{fmt(g['true_share'], '.0%'):>6}{fmt(g['mean_value'], '.2f'):>6}"
                     f"{fmt(g['wall_seconds']):>8}{fmt(g['tok_per_s']):>9}{fmt(g['tok_per_s_of_saturated'], '.2f'):>6}")
    sc, r, rb = om["screening"], s["omega_over_ms"], s["omega_over_ms_without_screening"]
    names = {"completions": "rollouts", "generated_tokens": "tokens", "completions_per_step": "rollouts/step",
             "tokens_per_step": "tokens/step", "requests": "requests", "wall_seconds": "wall"}
    lines += [
        "steps: distinct (problem, prefix texts, step text); rollouts: completions sampled (sum of n); "
        "True: share of True hard labels; value: mean soft label; /sat: tok/s / saturated tok/s",
        f"OmegaPRM: screened out {om['screened_out'] or 'none'} of {om['problems']} problems, labels on "
        f"{om['problems_labelled']}; binary searches {om['binary_searches']}; screening {sc['requests']} requests, "
        f"{sc['completions']} rollouts, {sc['generated_tokens']} tokens (in its row, not in the w/o row)",
        f"skipped labels (failed rollouts): Math-Shepherd {ms['skipped']}, OmegaPRM {om['skipped']}; "
        f"problems that failed: {len(ms['errors'])}, {len(om['errors'])}",
        "OmegaPRM / Math-Shepherd at equal problems and trees (the same searched trees and verdicts), "
        "screening included: " + ", ".join(f"{names[k]} {fmt(v, '.2f')}x" for k, v in r.items()),
        "  without screening: " + ", ".join(f"{names[k]} {fmt(v, '.2f')}x" for k, v in rb.items()),
        f"hard-label agreement on shared single steps (same problem, prefix texts, step text): {ag['agree']} of "
        f"{ag['shared']} ({fmt(ag['rate'], '.1%')}), {ag['confusion']}; of them labelled from rollouts on both sides "
        f"(not a final step's own verdict): {ag['sampled_agree']} of {ag['sampled_shared']} "
        f"({fmt(ratio(ag['sampled_agree'], ag['sampled_shared']), '.1%')}); OmegaPRM multi-step spans (not comparable): "
        f"{ag['omega_spans']}; OmegaPRM single steps Math-Shepherd did not label: {ag['omega_unmatched']}",
    ]
    return lines
