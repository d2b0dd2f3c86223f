"""The benchmark presets of ``ponder bench throughput | compare | accuracy | flat``, and their reports.

Presets are plain run-config mappings (the YAML schema of ``configs/``), validated with
:func:`ponder.config.parse_run_config`; a command's CONFIG argument replaces them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ponder.config import RunConfig, parse_run_config
from search.protocols import ConfigError

STEPS = {"delimiter": "\n\n", "max_depth": 6, "max_step_tokens": 96}
SEGMENTS = {"fixed_tokens": 16, "max_depth": 8}
"""TreePO-style 16-token steps: the embedded model seldom writes blank lines (its chains are
mostly one delimiter step), so searches that compare algorithms cut fixed segments."""
SELF_EVAL = {"kind": "self_eval"}


def chain_sum(size: int, seed: int, max_digits: int) -> dict[str, Any]:
    """reasoning-gym chain_sum with 2-3 terms of 1..``max_digits`` digits."""
    return {"source": "reasoning_gym", "name": "chain_sum", "size": size, "seed": seed,
            "config": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": max_digits}}


THROUGHPUT_WORKLOADS = ("gsm_symbolic", "chain_sum")
"""``gsm_symbolic`` (the default): grade-school word problems, on which the embedded model
writes multi-step chains (about 9 expansions per problem, depth up to 8) under long prompts --
a tree search. ``chain_sum``: the edge task, on which it mostly answers in one short step
(about 2 expansions per problem), so per-request costs dominate."""


def throughput_config(num_problems: int = 64, workload: str = "gsm_symbolic") -> RunConfig:
    """Step beam search (B1 = 3, B2 = 4, prior-scored: policy traffic only) over ``workload``."""
    if workload == "gsm_symbolic":
        tasks: dict[str, Any] = {"source": "reasoning_gym", "name": "gsm_symbolic", "size": num_problems, "seed": 7}
        steps = {**STEPS, "max_depth": 8, "max_step_tokens": 128}
    elif workload == "chain_sum":
        tasks, steps = chain_sum(num_problems, 7, 2), STEPS
    else:
        raise ConfigError("workload", workload, f"expected one of {', '.join(THROUGHPUT_WORKLOADS)}")
    return parse_run_config({
        "name": f"bench-throughput-{workload}", "tasks": tasks, "steps": steps,
        "budget": {"max_generated_tokens": 4000},
        "search": {"algorithm": "step_beam", "beam_width": 3, "num_children": 4},
    })


def flat_config(num_problems: int = 200, num_samples: int = 8) -> RunConfig:
    """Self-consistency over chain_sum as in ``configs/self_consistency.yaml``, but without a
    token budget, so each problem's one request asks for ``steps.solution_tokens`` per sample."""
    return parse_run_config({
        "name": "bench-flat", "tasks": chain_sum(num_problems, 7, 2), "steps": STEPS,
        "search": {"algorithm": "self_consistency", "num_samples": num_samples},
    })


def compare_configs(num_problems: int = 32, num_samples: int = 8, budget: int = 2000,
                    beam_width: int = 2) -> tuple[RunConfig, RunConfig]:
    """Best-of-N (N = ``num_samples``) and step beam (B1 x B2 = N) on the same problems, the
    same per-problem token budget and the same scorer (the policy's self-evaluation)."""
    if num_samples % beam_width:
        raise ValueError(f"num_samples={num_samples} is not a multiple of beam_width={beam_width}")
    common = {"tasks": chain_sum(num_problems, 5, 2), "steps": SEGMENTS, "reward": SELF_EVAL,
              "budget": {"max_generated_tokens": budget}}
    bon = parse_run_config({**common, "name": "bench-bon",
                            "search": {"algorithm": "best_of_n", "num_samples": num_samples}})
    beam = parse_run_config({**common, "name": "bench-beam",
                             "search": {"algorithm": "step_beam", "beam_width": beam_width,
                                        "num_children": num_samples // beam_width}})
    return bon, beam


def accuracy_tasks(num_problems: int = 20) -> dict[str, Any]:
    """The edge tasks of the accuracy bench: chain_sum, 2-3 one-digit terms (as ``make demo``)."""
    return chain_sum(num_problems, 11, 1)


@dataclasses.dataclass(frozen=True)
class AccuracyEntry:
    """One algorithm at one budget: its run config and what scores its steps."""

    algorithm: str
    budget: int | None
    scorer: str
    cfg: RunConfig


def accuracy_entries(tasks: Mapping[str, Any], budget: int, tokens_per_chain: float) -> list[AccuracyEntry]:
    """The searching algorithms at a per-problem budget of ``budget`` generated tokens.

    Budgets are checked before each call and self-consistency / best-of-N sample every
    chain's first step in one request, so they get N = round(budget / tokens_per_chain)
    chains (``tokens_per_chain`` measured by the pilot of :func:`baseline_entries`); the tree
    searches get large nominal sizes and the budget stops them.
    """
    n = max(1, round(budget / max(tokens_per_chain, 1.0)))
    searches: list[tuple[str, str, dict[str, Any], bool]] = [
        ("self_consistency", "majority vote", {"algorithm": "self_consistency", "num_samples": n}, False),
        ("best_of_n", "self_eval", {"algorithm": "best_of_n", "num_samples": n}, True),
        ("step_beam", "logprob prior", {"algorithm": "step_beam", "beam_width": 3, "num_children": 4,
                                        "score": "prior"}, False),
        ("best_first", "logprob prior", {"algorithm": "best_first", "expansion_width": 3,
                                         "max_expansions": 256, "depth_alpha": 2.0}, False),
        ("mcts", "self_eval", {"algorithm": "mcts", "num_simulations": 256, "num_children": 3,
                               "selection": "puct", "value": "reward_model", "num_parallel": 4}, True),
        *((name, "self-eval turn", {**search, **REFINE}, False) for name, search in REFINE_SEARCHES),
    ]
    return [AccuracyEntry(name, budget, scorer, parse_run_config({
        "name": f"bench-acc-{name}-{budget}", "tasks": dict(tasks), "steps": SEGMENTS, "search": search,
        "budget": {"max_generated_tokens": budget}, **({"reward": SELF_EVAL} if rm else {}),
    })) for name, scorer, search, rm in searches]


REFINE = {"num_rollouts": 64, "answer_tokens": 96, "critique_tokens": 64}
"""Self-refine searches in the accuracy bench: the budget stops them (their self-evaluations
are policy generations, so they count in it)."""
REFINE_SEARCHES = (
    ("mc_nest_is", {"algorithm": "mc_nest", "selection": "importance_sampling"}),
    ("mc_nest_greedy", {"algorithm": "mc_nest", "selection": "greedy"}),
    ("mc_nest_pairwise", {"algorithm": "mc_nest", "selection": "pairwise_importance_sampling"}),
    ("mctsr", {"algorithm": "mctsr"}),
)

PILOT_SAMPLES = 4


def baseline_entries(tasks: Mapping[str, Any]) -> list[AccuracyEntry]:
    """Greedy chain of thought, and the pilot: self-consistency with 4 chains, no budget
    cap, whose tokens per chain size the sampling baselines at each budget."""
    return [AccuracyEntry(name, None, scorer, parse_run_config({
        "name": f"bench-acc-{name}", "tasks": dict(tasks), "steps": SEGMENTS, "search": search,
        "budget": {"max_generated_tokens": 4000},
    })) for name, scorer, search in [
        ("cot", "greedy", {"algorithm": "cot"}),
        ("self_consistency", "majority vote", {"algorithm": "self_consistency", "num_samples": PILOT_SAMPLES}),
    ]]


@dataclasses.dataclass(frozen=True)
class AccuracyPoint:
    """One accuracy-table row."""

    algorithm: str
    budget: int | None
    scorer: str
    problems: int
    accuracy: float
    generated_per_problem: float
    reward_tokens_per_problem: float
    calls_per_problem: float
    wall_seconds: float


def accuracy_point(entry: AccuracyEntry, summary: Mapping[str, float]) -> AccuracyPoint:
    n = max(int(summary["problems"]), 1)
    return AccuracyPoint(entry.algorithm, entry.budget, entry.scorer, int(summary["problems"]),
                         float(summary["accuracy"]), summary["generated_tokens"] / n,
                         summary["reward_tokens"] / n, summary["calls"] / n, float(summary["wall_seconds"]))


def accuracy_table(points: Sequence[AccuracyPoint]) -> str:
    """A plain-text table, one row per (algorithm, budget)."""
    head = (f"{'algorithm':<17}{'budget':>7}  {'scorer':<14}{'acc':>6}{'±se':>6}{'gen tok/pb':>11}"
            f"{'rm tok/pb':>10}{'calls/pb':>9}{'wall s':>8}")
    lines = [head]
    for p in points:
        se = math.sqrt(p.accuracy * (1 - p.accuracy) / p.problems) if p.problems else 0.0
        budget = "-" if p.budget is None else str(p.budget)
        lines.append(f"{p.algorithm:<17}{budget:>7}  {p.scorer:<14}{p.accuracy:>6.3f}{se:>6.3f}"
                     f"{p.generated_per_problem:>11.0f}{p.reward_tokens_per_problem:>10.0f}"
                     f"{p.calls_per_problem:>9.1f}{p.wall_seconds:>8.1f}")
    return "\n".join(lines)


def accuracy_plot(points: Sequence[AccuracyPoint], path: Path, title: str) -> Path:
    """Accuracy vs generated tokens per problem (log x), one line per algorithm; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name in dict.fromkeys(p.algorithm for p in points):
        mine = sorted((p for p in points if p.algorithm == name), key=lambda p: p.generated_per_problem)
        xs = [max(p.generated_per_problem, 1.0) for p in mine]
        line, = ax.plot(xs, [p.accuracy for p in mine], marker="o", label=f"{name} ({mine[0].scorer})")
        for x, p in zip(xs, mine):
            if p.budget is not None:
                ax.annotate(str(p.budget), (x, p.accuracy), textcoords="offset points", xytext=(3, 4),
                            fontsize=6, color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("generated policy tokens per problem (mean; labels: budget)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
