"""``ponder bench treepo``: TreePO segment-tree sampling vs independent sampling (issue 12 §4).

At each width W (8 and 16) the same problems are sampled twice on one server: independently
(self-consistency: one request with n = W per problem, whole chains) and as a TreePO tree
(up to W trajectories of fixed-length segments sharing prefixes). Both use the same step
format, so a trajectory has at most ``max_depth x segment_tokens`` tokens on either side, the
same temperature and the same number of problems at once. Per run: generated tokens, the
tokens the server computed (prompt tokens not served from its prefix cache + generated,
from its counters, and from the replies' usage), wall, pass@W (any trajectory's answer
correct) and vote accuracy (the run's own answer). Runs go independent, TreePO at the first
width and TreePO, independent at the next (ABBA), so drift of a shared machine does not
favour one side; the prefix cache is emptied before each run. TreePO's segments are aligned on
the server's KV blocks (``align_block``; the CLI's ``--align``, on by default), an engine-side
setting that changes no branching: without it each segment request recomputes its prompt's
partial last block in every sequence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.client import VLLMClient, served_model
from benchmarks.metrics import fmt, ratio
from benchmarks.search_runs import RunMeasure, measure_run
from benchmarks.suite import chain_sum
from ponder.config import RunConfig, parse_run_config
from search.protocols import ConfigError
from search.trace import SearchTrace
from search.tree import Tree
from verifiers.tasks import TaskSet


WORKLOADS = ("basic_arithmetic", "gsm_symbolic", "chain_sum")
"""reasoning-gym tasks at the embedded model's edge: ``basic_arithmetic`` (the default; its
default config, 2-6 terms of 1-4 digits: ~110-token answers, several 32-token segments),
``gsm_symbolic`` (word problems under long prompts, ~140-token answers, pass@8 ~0.05-0.1) and
``chain_sum`` (2-3 terms of 1-2 digits: ~30-token answers, mostly inside the first segment)."""


@dataclasses.dataclass(frozen=True)
class TreepoEntry:
    method: str
    """``independent`` or ``treepo``."""
    width: int
    cfg: RunConfig


def treepo_entries(num_problems: int = 100, widths: Sequence[int] = (8, 16), segment_tokens: int = 16,
                   max_depth: int = 8, concurrency: int = 16, search: dict[str, Any] | None = None,
                   workload: str = "basic_arithmetic", align_block: int | None = None) -> list[TreepoEntry]:
    """Independent and TreePO sampling at each width, ABBA order. ``workload``: one of
    :data:`WORKLOADS`. ``search``: extra TreePO settings; ``align_block``: TreePO's
    ``align_block`` (the server's KV block size; None: unaligned segments)."""
    if workload not in WORKLOADS:
        raise ConfigError("workload", workload, f"expected one of {', '.join(WORKLOADS)}")
    tasks = chain_sum(num_problems, 7, 2) if workload == "chain_sum" else {
        "source": "reasoning_gym", "name": workload, "size": num_problems, "seed": 7}
    search = {**({"align_block": align_block} if align_block else {}), **(search or {})}
    common = {"tasks": tasks, "steps": {"fixed_tokens": segment_tokens, "max_depth": max_depth},
              "max_concurrent_problems": concurrency}
    out = []
    for k, w in enumerate(widths):
        pair = [
            TreepoEntry("independent", w, parse_run_config({**common, "name": f"bench-treepo-indep-{w}",
                                                            "search": {"algorithm": "self_consistency", "num_samples": w}})),
            TreepoEntry("treepo", w, parse_run_config({**common, "name": f"bench-treepo-{w}",
                                                       "search": {"algorithm": "treepo", "max_width": w, **search}})),
        ]
        out += pair if k % 2 == 0 else pair[::-1]
    return out


@dataclasses.dataclass
class TrajectoryScores:
    """What a run's trajectories scored, read from its traces."""

    passed: int = 0
    problems: int = 0
    trajectories: list[int] = dataclasses.field(default_factory=list)
    reasons: Counter[str] = dataclasses.field(default_factory=Counter)
    fallbacks: int = 0

    @property
    def pass_at_w(self) -> float:
        return self.passed / self.problems if self.problems else 0.0


@dataclasses.dataclass
class TreepoPoint:
    """One measured run and what its trajectories scored."""

    entry: TreepoEntry
    measure: RunMeasure
    scores: TrajectoryScores

    @property
    def usage(self) -> dict[str, float]:
        return self.measure.summary

    @property
    def client_computed(self) -> float:
        """Prompt tokens the replies' usage says were not cached, plus generated tokens."""
        rows = self.measure.rows
        prompt = sum(r["usage"]["prompt_tokens"] - r["usage"]["cached_prompt_tokens"] for r in rows)
        return prompt + sum(r["usage"]["generated_tokens"] for r in rows)

    @property
    def server_computed(self) -> float:
        """Prompt tokens the server computed (each of n sequences counts) plus generated ones."""
        return self.measure.server_prompt[1] + self.measure.server_generated


def leaves_of(trace: SearchTrace, tree: Tree) -> list[int]:
    """A run's trajectories: TreePO's recorded ones, else every chain's last node."""
    if "trajectories" in trace.extra:
        return [int(t["leaf"]) for t in trace.extra["trajectories"]]
    return [n.id for n in tree.nodes if n.id != 0 and not n.children]


async def score_trajectories(point: TrajectoryScores, run_dir: Path, tasks: TaskSet) -> None:
    """pass@W over the run's traces: each trajectory's whole text checked by the task's verifier."""
    for path in sorted((run_dir / "traces").glob("*.json")):
        trace = SearchTrace.model_validate_json(path.read_text())
        tree = trace.to_tree()
        leaves = leaves_of(trace, tree)
        verdicts = await asyncio.gather(*(tasks.averify(trace.problem_id, tree.path_text(leaf)) for leaf in leaves))
        point.problems += 1
        point.passed += any(v.correct for v in verdicts)
        point.trajectories.append(len(leaves))
        point.reasons.update(t["finish_reason"] for t in trace.extra.get("trajectories", []))
        point.fallbacks += int(trace.extra.get("fallback_counter", 0))


async def measure_treepo(entries: Sequence[TreepoEntry], tasks: TaskSet, endpoint: str) -> list[TreepoPoint]:
    """Runs every entry on ``endpoint`` (each config must point at it), in order."""
    points = []
    async with VLLMClient(endpoint, await served_model(endpoint)) as client:
        for e in entries:
            scores = TrajectoryScores()

            async def inspect(run_dir: Path, scores: TrajectoryScores = scores) -> None:
                await score_trajectories(scores, run_dir, tasks)

            m = await measure_run(e.cfg, tasks, client, f"{e.method}-{e.width}", inspect=inspect)
            points.append(TreepoPoint(e, m, scores))
    return points


def treepo_lines(points: Sequence[TreepoPoint]) -> list[str]:
    """The table, the TreePO / independent ratios per width, against the issue's targets."""
    lines = [f"{'run':<16}{'pbs':>5}{'traj/pb':>8}{'gen tok':>9}{'calls':>7}{'client comp':>12}"
             f"{'server comp':>12}{'cache hit':>10}{'wall s':>8}{'pass@W':>8}{'vote':>7}"]
    for p in points:
        s = p.usage
        traj = sum(p.scores.trajectories) / len(p.scores.trajectories) if p.scores.trajectories else 0.0
        lines.append(f"{p.measure.label:<16}{p.scores.problems:>5}{traj:>8.2f}{s['generated_tokens']:>9.0f}{s['calls']:>7.0f}"
                     f"{p.client_computed:>12.0f}{p.server_computed:>12.0f}{fmt(p.measure.hit_rate_metrics, '.1%'):>10}"
                     f"{p.measure.wall_seconds:>8.1f}{p.scores.pass_at_w:>8.3f}{s['accuracy']:>7.3f}")
    for p in points:
        if p.entry.method == "treepo":
            counts = ", ".join(f"{k} {v}" for k, v in p.scores.reasons.most_common())
            lines.append(f"{p.measure.label}: trajectories per problem min {min(p.scores.trajectories, default=0)} "
                         f"max {max(p.scores.trajectories, default=0)}; fallbacks {p.scores.fallbacks}; finish reasons: {counts}")
    lines.append("-- TreePO vs independent at equal W (targets: >= 40% fewer generated tokens, >= 30% less wall, "
                 "pass@W not lower)")
    for w in dict.fromkeys(p.entry.width for p in points):
        pair = {p.entry.method: p for p in points if p.entry.width == w}
        if set(pair) != {"treepo", "independent"}:
            continue
        t, i = pair["treepo"], pair["independent"]

        def saving(a: float, b: float, less: str = "fewer") -> str:
            r = ratio(a, b)
            return "n/a" if r is None else f"{abs(1 - r):.1%} {less if r <= 1 else 'more'}"

        lines.append(
            f"W={w}: generated tokens {saving(t.usage['generated_tokens'], i.usage['generated_tokens'])}, "
            f"server-computed tokens {saving(t.server_computed, i.server_computed)} "
            f"(usage: {saving(t.client_computed, i.client_computed)}), wall {saving(t.measure.wall_seconds, i.measure.wall_seconds, 'less')}"
            f"; pass@W {t.scores.pass_at_w:.3f} vs {i.scores.pass_at_w:.3f}; vote {t.usage['accuracy']:.3f} vs {i.usage['accuracy']:.3f}")
    return lines


def treepo_json(points: Sequence[TreepoPoint]) -> str:
    """The measured figures as JSON (one object per run)."""
    return json.dumps([{
        "method": p.entry.method, "width": p.entry.width, "problems": p.scores.problems, "pass_at_w": p.scores.pass_at_w,
        "vote_accuracy": p.usage["accuracy"], "generated_tokens": p.usage["generated_tokens"],
        "calls": p.usage["calls"], "client_computed_tokens": p.client_computed,
        "server_computed_tokens": p.server_computed, "server_generated_tokens": p.measure.server_generated,
        "wall_seconds": p.measure.wall_seconds, "trajectories": p.scores.trajectories, "finish_reasons": dict(p.scores.reasons),
        "fallbacks": p.scores.fallbacks, "search": p.entry.cfg.search.model_dump(mode="json"),
    } for p in points], indent=1)
