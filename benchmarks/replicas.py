"""Tree-affine vs per-request routing over N replicas of one checkpoint (issue 26 §3, §6).

``ponder bench replicas`` starts N vLLM replicas on this machine (``models.replicas``: a
split of the cores each), then runs the same MCTS workload twice against them, once with
``model.routing: request`` (each request to the least-loaded replica) and once with
``routing: tree`` (each problem bound to one replica). Before each run every replica's
prefix cache is emptied (vLLM dev mode's ``POST /reset_prefix_cache``); around it every
replica's Prometheus counters are read. Reported per routing:

- prefix-cache hit rate: hit tokens / queried prompt tokens, summed over the replicas;
- prompt tokens the servers computed (queried - hit): what the routing made them recompute;
- generated tokens, wall seconds and generated tok/s;
- the sequences the servers ran (each of a request's ``n`` samples queries the prefix cache) and
  the prompt tokens computed per sequence: vLLM's prefix cache reuses whole KV blocks only, and a
  prompt found entire still recomputes its last token, so each sequence recomputes its prompt's
  tail block (on average about half a block) wherever it runs: a floor no routing removes;
- the prompt tokens each replica was asked for (how the load fell on them), and the problems
  tree routing moved off their replica (down or saturated).

With ``--ceiling`` the replicas are stopped and the same workload runs once more on one server
with all their cores and all their KV cache (:func:`ceiling_settings`), its cache emptied
first: the hit rate with no routing at all. Its misses are the workload's own (first visits,
tail blocks, evictions from a cache of that size); the gap from a routing's hit rate to it is
what that routing lost.

``--system-prompt`` and ``--shots K`` lengthen the prompt every request shares: the latter adds K
worked examples of the task's training split (:func:`few_shot_prompt`), as MATH / GSM8K
harnesses prompt. The tail block is then a smaller share of each prompt, so every hit rate
rises; what routing loses is the rest (each tree's own tokens, computed again on a replica that
never saw them).

The two runs search the same problems with the same seeds, but their trees differ (sampling
on different servers), so prompt tokens queried differ a little too; the hit rate and the
computed prompt tokens per queried token are the comparable numbers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from benchmarks.metrics import GENERATED, SEQUENCES, counter_delta, fmt
from benchmarks.search_runs import override, reset_prefix_cache, snapshot
from benchmarks.server import PREFIX_HITS, PREFIX_QUERIES
from models.client import VLLMClient
from models.server_settings import ServerSettings
from ponder.config import DEFAULT_SYSTEM_PROMPT, RunConfig, parse_run_config
from ponder.run import run_config
from verifiers.tasks import TaskSet


TASK = "chain_sum"
TASK_OPTIONS = {"min_terms": 3, "max_terms": 3, "min_digits": 2, "max_digits": 2}
"""The workload's problems: chain_sum, 3 two-digit terms (seed 5)."""

SHOT_SEED = 1005
"""The reasoning-gym seed the few-shot examples are drawn from (not the workload's 5)."""


def workload(num_problems: int = 16, system_prompt: str | None = None) -> RunConfig:
    """The MCTS workload: chain_sum (3 two-digit terms), 8 simulations, 3 children, depth 5;
    ``system_prompt`` replaces the model's default one (a longer shared prefix, e.g. a worked
    example or :func:`few_shot_prompt`'s, leaves the uncached tail block a smaller share of each
    prompt)."""
    return parse_run_config({
        "name": "bench-replicas",
        "tasks": {"source": "reasoning_gym", "name": TASK, "seed": 5, "size": num_problems,
                  "config": TASK_OPTIONS},
        "steps": {"max_depth": 5, "max_step_tokens": 48},
        "search": {"algorithm": "mcts", "num_simulations": 8, "num_children": 3, "value": "prior"},
        "max_concurrent_problems": num_problems,
        **({"model": {"system_prompt": system_prompt}} if system_prompt is not None else {}),
    })


def few_shot_prompt(shots: int, instruction: str = DEFAULT_SYSTEM_PROMPT, *,
                    exclude: Collection[str] = (), scan: int = 2_000) -> str:
    """``instruction`` followed by ``shots`` worked examples, the way MATH / GSM8K harnesses
    prompt (4 to 8 solved problems before the question): each a problem of the workload's task
    and options from its training split (:func:`verifiers.planted.is_heldout` false, drawn with
    :data:`SHOT_SEED`, none of the questions in ``exclude``), solved one operation per step with
    the workload's step delimiter (a blank line) and ending "The answer is N." as the instruction
    asks. Every example's answer is the task's own gold.

    Raises:
        ValueError: ``shots`` < 1, or fewer than ``shots`` usable problems in ``scan``.
    """
    import reasoning_gym

    from verifiers.planted import arithmetic_steps, is_heldout, show

    if shots < 1:
        raise ValueError(f"shots={shots}: at least one worked example")
    dataset = reasoning_gym.create_dataset(TASK, size=scan, seed=SHOT_SEED, **TASK_OPTIONS)
    skip = set(exclude)
    examples: list[str] = []
    for index in range(scan):
        entry = dataset[index]
        question = str(entry["question"])
        if question in skip or is_heldout(TASK, question):
            continue
        solved = arithmetic_steps(entry["metadata"]["expression"])
        if solved is None or show(solved[1]) != str(entry["answer"]).strip():
            continue
        skip.add(question)  # a question drawn twice is shown once
        examples.append(f"Example {len(examples) + 1}. {question}\n\n" + "\n\n".join(solved[0]))
        if len(examples) == shots:
            return "\n\n".join([instruction, *examples])
    raise ValueError(f"shots={shots}: only {len(examples)} training-split {TASK} problems in {scan} scanned")


@dataclasses.dataclass(frozen=True)
class RoutingRun:
    """One measured run under one routing."""

    routing: str
    queried: float
    hits: float
    generated: float
    wall_s: float
    problems: int
    per_replica_queried: tuple[float, ...]
    cache_reset: bool
    moves: tuple[tuple[str, int], ...] = ()
    """Problems tree routing moved off their replica, by reason (``moved`` events)."""

    sequences: float = 0.0
    """Sequences the servers ran (``vllm:request_prompt_tokens_count``: each of ``n`` samples)."""

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.queried if self.queried else None

    @property
    def computed(self) -> float:
        """Prompt tokens the servers computed (queried and not found in the prefix cache)."""
        return self.queried - self.hits

    @property
    def computed_per_queried(self) -> float:
        return self.computed / self.queried if self.queried else 0.0

    @property
    def computed_per_sequence(self) -> float | None:
        return self.computed / self.sequences if self.sequences else None


CEILING = "1 server"
"""The label of the ceiling run (one server, no routing)."""


def ceiling_settings(settings: ServerSettings, replicas: int) -> ServerSettings:
    """The one server of the ceiling run: the replicas' settings with all their cores
    (``omp_threads_bind`` 'auto') and their KV cache added up, so the cache is as large as theirs
    together and what it misses is the workload's, not a smaller cache's."""
    return settings.model_copy(update={"kv_cache_gib": replicas * settings.resolved_kv_cache_gib(),
                                       "omp_threads_bind": "auto", "cuda_visible_devices": None})


async def measure(cfg: RunConfig, tasks: TaskSet, endpoints: Sequence[str], model: str, routing: str,
                  on_progress: Callable[[str], None] | None = None, label: str | None = None) -> RoutingRun:
    """Runs ``cfg`` against ``endpoints`` with ``routing``; reads every replica's counters around it.
    ``label``: the run's name in the report (default: ``routing``)."""
    await asyncio.to_thread(tasks.warm)  # the answer checker's workers start outside the timed run
    clients = [VLLMClient(e, model) for e in endpoints]
    try:
        reset = all(await asyncio.gather(*(reset_prefix_cache(c) for c in clients)))
        before = await asyncio.gather(*(snapshot(c) for c in clients))
        with tempfile.TemporaryDirectory(prefix="ponder-bench-replicas-") as tmp:
            run = override(cfg, {"model": {"endpoints": list(endpoints), "model": model, "routing": routing},
                                 "run_dir": str(Path(tmp) / routing)})
            started = time.perf_counter()
            if on_progress is not None:
                on_progress(f"{label or 'routing ' + routing}: {len(tasks.problems)} problems")
            moves: dict[str, int] = {}

            def on_event(e: dict) -> None:
                if e.get("event") == "moved":
                    moves[e["reason"]] = moves.get(e["reason"], 0) + 1

            outcome = await run_config(run, tasks=tasks, warm_up_server=False, on_progress=None,
                                       on_event=on_event)
            wall = time.perf_counter() - started
        after = await asyncio.gather(*(snapshot(c) for c in clients))
    finally:
        for c in clients:
            await c.aclose()
    queried = [counter_delta(b, a, PREFIX_QUERIES) for b, a in zip(before, after, strict=True)]
    return RoutingRun(
        routing=label or routing, queried=sum(queried),
        hits=sum(counter_delta(b, a, PREFIX_HITS) for b, a in zip(before, after, strict=True)),
        generated=sum(counter_delta(b, a, GENERATED) for b, a in zip(before, after, strict=True)),
        wall_s=wall, problems=len(outcome.rows), per_replica_queried=tuple(queried),
        cache_reset=reset, moves=tuple(sorted(moves.items())),
        sequences=sum(counter_delta(b, a, SEQUENCES) for b, a in zip(before, after, strict=True)))


def lines(runs: Sequence[RoutingRun]) -> list[str]:
    """The report: one row per run, then tree vs request, then each routing against the
    one-server ceiling when it was run."""
    out = [f"{'routing':<8} {'problems':>8} {'hit rate':>9} {'queried':>9} {'computed':>9} {'per seq':>7} "
           f"{'generated':>9} {'wall s':>7} {'gen tok/s':>9}  queried per replica"]
    for r in runs:
        per_seq = r.computed_per_sequence
        out.append(f"{r.routing:<8} {r.problems:>8} {fmt(r.hit_rate, '.1%'):>9} {r.queried:>9.0f} {r.computed:>9.0f} "
                   f"{fmt(per_seq, '.1f'):>7} {r.generated:>9.0f} {r.wall_s:>7.1f} {r.generated / r.wall_s:>9.1f}  "
                   + " / ".join(f"{q:.0f}" for q in r.per_replica_queried)
                   + ("; moved " + ", ".join(f"{n} ({why})" for why, n in r.moves) if r.moves else "")
                   + ("" if r.cache_reset else "  (prefix caches NOT reset: dev mode off)"))
    by = {r.routing: r for r in runs}
    if "tree" in by and "request" in by:
        t, q = by["tree"], by["request"]
        out.append(f"tree vs request: hit rate {fmt(t.hit_rate, '.1%')} vs {fmt(q.hit_rate, '.1%')}; prompt tokens computed per "
                   f"queried token {t.computed_per_queried:.3f} vs {q.computed_per_queried:.3f}; generated tok/s "
                   f"{t.generated / t.wall_s:.1f} vs {q.generated / q.wall_s:.1f}")
    if CEILING in by:
        c = by[CEILING]
        for name in ("tree", "request"):
            if name in by:
                r = by[name]
                lost = r.computed_per_queried - c.computed_per_queried
                out.append(f"{name} vs {CEILING} (ceiling): hit rate {fmt(r.hit_rate, '.1%')} vs {fmt(c.hit_rate, '.1%')}; "
                           f"prompt tokens computed per queried token {r.computed_per_queried:.3f} vs "
                           f"{c.computed_per_queried:.3f} (routing lost {lost:+.3f})")
    return out
