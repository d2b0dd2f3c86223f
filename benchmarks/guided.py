"""``ponder bench guided``: searches guided by a step judge beside self-consistency at equal
generated tokens, on held-out problems (issue 27 §4).

One base run config (``configs/guided_chain_sum.yaml``: the task, the prompt, the step format,
the symbolic checker as ``reward``) and a list of *arms*, each a
search over the same problems:

- ``sc:N``       self-consistency, N sampled chains, majority vote (no judge);
- ``bon:N``      the same N chains, each scored by the judge (per-step scores, ``min`` over the
                 chain), answer by judge-weighted vote;
- ``beam:B1xB2`` step beam search (B1 kept, B2 children per node), candidates ranked by the
                 judge's score of their last step (false carries on), answer by judge-weighted vote
                 over the finished paths;
- ``vote:N``     no run of its own: ``sc:N``'s chains, read back from its traces, each weighed by the
                 symbolic checker's verdict on the whole chain (:func:`chain_weight`: a false claim
                 anywhere -> ``false_score``, else some true claim -> ``true_score``, else
                 ``unchecked_score``), answer by weighted vote -- best-of-N over the very chains
                 self-consistency voted on, so the generated tokens are equal by construction and
                 the paired difference is the judge's alone.
- ``vote:ARM``   the same re-scoring over another arm's finished chains, e.g. ``vote:beam:2x4``:
                 the beam's own search (ranking by the last step's score), then the chain-verdict
                 vote over every path it finished instead of its last-step-weighted vote.

Every arm runs in its own run directory under ``--out`` (``out/<arm>/``), so a run stopped, or
split into pieces (``--limit``: only the first K problems; ``--arm``: only some arms), resumes
where it was; the table is always computed from everything the arm directories hold, over the
problems every arm finished. Each invocation's wall time is appended to the arm's
``bench_walls.jsonl`` with the machine's load.

The problems are the task config's, filtered to the held-out split of
:func:`verifiers.planted.is_heldout` (by question hash, never by seed: no training set of
ponder's can contain them), the first ``num_problems`` of them.

Matching: every judged arm is compared with the self-consistency arm whose generated tokens per
problem are nearest; the row says the token ratio, and flags it when the two differ by more
than 10 %. Accuracy with its binomial standard error; the paired difference (judged - SC) over
the same problems with the standard error of the mean of per-problem differences. pass@k of the
sampled arms (any finished chain correct) and, for every arm, ``any leaf``: any finished path of
its tree correct, verified after the search (what a perfect selector would reach).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.parallel import accuracy_se, paired_difference
from ponder.config import RunConfig, parse_run_config
from search.protocols import ConfigError

ARM_RE = re.compile(r"^(sc|bon|vote):(\d+)$|^beam:(\d+)x(\d+)$")
VOTE_OVER_RE = re.compile(r"^vote:((?:sc|bon):\d+|beam:\d+x\d+)$")
"""``vote:ARM``: the checker's chain-verdict vote over another arm's finished chains."""
TOKEN_MATCH = 0.10
"""Arms whose generated tokens per problem differ by more than this share are flagged."""


@dataclasses.dataclass(frozen=True)
class Arm:
    """One search over the bench's problems."""

    label: str
    """As given on the command line: ``sc:8``, ``bon:8``, ``beam:2x4``."""
    search: dict[str, Any]
    """The run config's ``search`` block."""
    judged: bool
    """Whether the search uses the step judge (the config's ``reward``)."""
    source: str | None = None
    """A derived arm (``vote:N``, ``vote:ARM``): the arm whose run directory it re-scores (``sc:N``,
    ``ARM``); it runs nothing."""

    @property
    def dirname(self) -> str:
        return self.label.replace(":", "-")


def parse_arm(text: str) -> Arm:
    """``sc:N``, ``bon:N``, ``vote:N``, ``beam:B1xB2`` or ``vote:ARM`` -> an :class:`Arm`;
    ValueError naming the forms otherwise."""
    over = VOTE_OVER_RE.match(text.strip())
    if over is not None:
        source = parse_arm(over.group(1))
        return Arm(text.strip(), dict(source.search), judged=True, source=source.label)
    m = ARM_RE.match(text.strip())
    if m is None:
        raise ValueError(f"arm {text!r}: expected sc:N (self-consistency), bon:N (best-of-N, judge-weighted "
                         "vote), vote:N (the judge's vote over sc:N's chains), beam:B1xB2 (step beam guided by "
                         "the judge) or vote:ARM (the judge's vote over that arm's finished chains, e.g. "
                         "vote:beam:2x4), e.g. sc:8, bon:8, vote:8, beam:2x4")
    kind, n, b1, b2 = m.groups()
    if kind == "vote":
        return Arm(text, {"algorithm": "best_of_n", "num_samples": int(n), "answer_by": "vote"}, judged=True,
                   source=f"sc:{n}")
    if kind == "sc":
        return Arm(text, {"algorithm": "self_consistency", "num_samples": int(n)}, judged=False)
    if kind == "bon":
        return Arm(text, {"algorithm": "best_of_n", "num_samples": int(n), "aggregation": "min",
                          "answer_by": "vote"}, judged=True)
    return Arm(text, {"algorithm": "step_beam", "beam_width": int(b1), "num_children": int(b2),
                      "score": "reward_model", "aggregation": "last", "answer_by": "vote"}, judged=True)


def arm_config(base: RunConfig, arm: Arm, run_dir: Path, endpoint: str | None = None,
               max_in_flight: int | None = None) -> RunConfig:
    """The base config with the arm's search, its run directory and the bench's server.
    Self-consistency keeps no reward model (it would not use one)."""
    from benchmarks.search_runs import override

    if arm.source is not None:
        raise ValueError(f"arm {arm.label} runs nothing: it re-scores {arm.source}'s run directory")

    data = base.model_dump(mode="json")
    data["search"] = arm.search
    data["run_dir"] = str(run_dir)
    data["name"] = f"{base.name}-{arm.dirname}"
    if not arm.judged:
        data["reward"] = None
    elif data.get("reward") is None:
        raise ConfigError("reward", None, f"arm {arm.label} is guided by a step judge: set reward in the base config "
                          "(e.g. reward: {kind: symbolic})")
    cfg = parse_run_config(data)
    updates: dict[str, Any] = {}
    if endpoint:
        updates["model"] = {"endpoints": [endpoint]}
    if max_in_flight:
        updates.setdefault("model", {})["max_in_flight"] = max_in_flight
    return override(cfg, updates) if updates else cfg


SPLITS = ("heldout", "tune")
"""Which side of :func:`verifiers.planted.is_heldout` a bench draws its problems from: ``heldout``
for the reported runs, ``tune`` (the other side, same task config) for choosing a setting first."""


def heldout_tasks(cfg: RunConfig, num_problems: int, split: str = "heldout"):  # -> TaskSet
    """The first ``num_problems`` problems of ``cfg.tasks`` in the held-out split, or with
    ``split="tune"`` the first of the others (to choose settings without looking at the held-out)."""
    from verifiers.planted import is_heldout
    from verifiers.tasks import load_tasks

    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    if cfg.tasks is None:
        raise ConfigError("tasks", None, "the bench's base config needs tasks")
    tasks = load_tasks(cfg.tasks)
    task_name = getattr(cfg.tasks, "name", None) or str(getattr(cfg.tasks, "path", ""))
    want = split == "heldout"
    held = [p for p in tasks.problems if is_heldout(task_name, p.question) == want]
    if len(held) < num_problems:
        raise ConfigError("tasks.size", len(tasks), f"{len(held)} of its problems are in the {split} split, fewer "
                          f"than --num-problems {num_problems}: raise tasks.size (about half are held out)")
    keep = {p.id for p in held[:num_problems]}
    return tasks.without([p.id for p in tasks.problems if p.id not in keep])


# -- what an arm's directory holds ----------------------------------------------------------


@dataclasses.dataclass
class ArmResult:
    """An arm's finished problems, read back from its run directory."""

    label: str
    judged: bool
    correct: dict[str, bool]
    generated: dict[str, int]
    """Generated policy tokens per problem."""
    calls: dict[str, int]
    judge_tokens: dict[str, int]
    """Reward-model tokens per problem (0 for the symbolic checker: no model)."""
    any_leaf: dict[str, bool]
    """Per problem: some finished path of its tree is correct (verified after the search)."""
    leaves: dict[str, int]
    """Per problem: finished paths in its tree."""
    wall_seconds: float = 0.0
    """Summed wall time of the invocations that ran its problems (see ``walls``)."""
    walls: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    verdicts: dict[str, list[tuple[str, bool]]] = dataclasses.field(default_factory=dict)
    """``vote:N`` arms, per problem: each answered chain's verdict from the checker (``false``,
    ``true``, ``unchecked``) and whether its answer is correct -- the judge's precision."""

    def restricted(self, ids: set[str]) -> ArmResult:
        """The same arm over ``ids`` only (the problems every arm finished)."""
        def pick(d: dict) -> dict:
            return {k: v for k, v in d.items() if k in ids}
        return dataclasses.replace(self, correct=pick(self.correct), generated=pick(self.generated),
                                   calls=pick(self.calls), judge_tokens=pick(self.judge_tokens),
                                   any_leaf=pick(self.any_leaf), leaves=pick(self.leaves),
                                   verdicts=pick(self.verdicts))

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def tokens_per_problem(self) -> float:
        return sum(self.generated.values()) / self.n if self.n else 0.0

    @property
    def calls_per_problem(self) -> float:
        return sum(self.calls.values()) / self.n if self.n else 0.0


def nearest_reference(arm: ArmResult, references: Sequence[ArmResult]) -> ArmResult | None:
    """The self-consistency arm whose generated tokens per problem are nearest ``arm``'s
    (by ratio, so 10 % above and 10 % below are as near)."""
    usable = [r for r in references if r.tokens_per_problem > 0]
    if not usable or arm.tokens_per_problem <= 0:
        return None
    return min(usable, key=lambda r: abs(math.log(arm.tokens_per_problem / r.tokens_per_problem)))


async def read_arm(run_dir: Path, arm: Arm, tasks) -> ArmResult:  # tasks: TaskSet
    """An arm's rows and traces: correctness, usage, and every finished path re-verified."""
    from ponder.rundir import RunDir
    from search.trace import SearchTrace

    wanted = {p.id for p in tasks.problems}
    rows = {k: r for k, r in RunDir(run_dir).finished().items() if k in wanted} if run_dir.exists() else {}
    out = ArmResult(arm.label, arm.judged, {}, {}, {}, {}, {}, {})
    for pid, row in rows.items():
        out.correct[pid] = bool(row["correct"])
        out.generated[pid] = int(row["usage"]["generated_tokens"])
        out.calls[pid] = int(row["usage"]["calls"])
        out.judge_tokens[pid] = int(row["usage"].get("reward_tokens", 0))
        trace_path = RunDir(run_dir).trace_path(pid)
        if not trace_path.exists():
            continue
        trace = SearchTrace.model_validate_json(trace_path.read_text())
        tree = trace.to_tree()
        ends = [i for i in tree.terminals() if tree.nodes[i].answer is not None]
        verdicts = await asyncio.gather(*(tasks.averify(pid, tree.path_text(i)) for i in ends))
        out.any_leaf[pid] = any(v.correct for v in verdicts)
        out.leaves[pid] = len(ends)
    walls_path = run_dir / "bench_walls.jsonl"
    if walls_path.exists():
        out.walls = [json.loads(line) for line in walls_path.read_text().splitlines() if line.strip()]
        out.wall_seconds = sum(float(w["wall_seconds"]) for w in out.walls)
    return out


def chain_verdict(statuses: Sequence[str]) -> str:
    """The symbolic checker's verdict on a whole chain from its steps' statuses: ``false`` when a
    step is ``checked_false``, else ``true`` when a step is ``checked_true``, else ``unchecked``."""
    if "checked_false" in statuses:
        return "false"
    return "true" if "checked_true" in statuses else "unchecked"


def chain_weight(statuses: Sequence[str], config) -> float:  # config: SymbolicCheckerConfig
    """:func:`chain_verdict` as a vote weight: ``false_score``, ``true_score`` or ``unchecked_score``.
    Unlike ``min`` over step scores, a closing step with nothing to check ('The answer is 9.')
    does not pull a checked chain down to a bare guess's weight."""
    return {"false": config.false_score, "true": config.true_score,
            "unchecked": config.unchecked_score}[chain_verdict(statuses)]


def verdict_lines(arm: ArmResult) -> list[str]:
    """How the checker judged a ``vote:N`` arm's chains, and how many of each kind were right."""
    counts: dict[str, list[int]] = {"true": [0, 0], "false": [0, 0], "unchecked": [0, 0]}
    for chains in arm.verdicts.values():
        for verdict, right in chains:
            counts[verdict][0] += 1
            counts[verdict][1] += int(right)
    total = sum(c[0] for c in counts.values())
    if not total:
        return []
    parts = [f"{k} {n} ({n / total:.0%} of chains, {r / n if n else 0.0:.0%} with the right answer)"
             for k, (n, r) in counts.items()]
    return [f"{arm.label}: the checker's verdicts on {total} answered chains: " + "; ".join(parts)]


async def read_vote_arm(source_dir: Path, arm: Arm, tasks, checker) -> ArmResult:
    """A ``vote:N`` (or ``vote:ARM``) arm: every answered chain of ``sc:N``'s (``ARM``'s) traces checked by ``checker`` (a
    :class:`~verifiers.step_reward.SymbolicChecker`), weighed by :func:`chain_weight`, the answer
    by weighted vote (:func:`search.aggregate.vote_path`, as ``best_of_n`` with ``answer_by:
    vote`` picks it), verified after. Tokens and calls are ``sc:N``'s; its wall is ``sc:N``'s plus
    the checking time. A problem with no answered chain keeps ``sc:N``'s verdict (both fall back
    to the same unfinished chain)."""
    from ponder.rundir import RunDir
    from search.aggregate import vote_path
    from search.protocols import Problem
    from search.trace import SearchTrace

    base = await read_arm(source_dir, dataclasses.replace(arm, source=None), tasks)
    out = dataclasses.replace(base, label=arm.label, judged=True, correct=dict(base.correct))
    started = time.perf_counter()
    for pid in base.correct:
        trace_path = RunDir(source_dir).trace_path(pid)
        if not trace_path.exists():
            continue
        trace = SearchTrace.model_validate_json(trace_path.read_text())
        tree = trace.to_tree()
        ends = [i for i in tree.terminals() if tree.nodes[i].answer is not None and tree.nodes[i].error is None]
        if not ends:
            continue
        problem = Problem(pid, trace.question)
        checks = await asyncio.gather(*(checker.check(problem, tree.path_texts(i)) for i in ends))
        statuses = [[c.status for c in found] for found in checks]
        weights = [chain_weight(st, checker.config) for st in statuses]
        right = await asyncio.gather(*(tasks.averify(pid, tree.nodes[i].answer) for i in ends))
        out.verdicts[pid] = [(chain_verdict(st), v.correct) for st, v in zip(statuses, right, strict=True)]
        node = vote_path(tree, ends, weights)
        answer = tree.nodes[node].answer if node is not None else None
        out.correct[pid] = bool(answer is not None and (await tasks.averify(pid, answer)).correct)
    out.wall_seconds = base.wall_seconds + (time.perf_counter() - started)
    return out


def common_ids(results: Sequence[ArmResult]) -> set[str]:
    """Problems every arm finished."""
    sets = [set(r.correct) for r in results]
    return set.intersection(*sets) if sets else set()


# -- the report ------------------------------------------------------------------------------


def table_lines(results: Sequence[ArmResult]) -> list[str]:
    """Markdown tables: every arm over the problems all finished, then each judged arm against
    the self-consistency arm nearest in generated tokens."""
    ids = common_ids(results)
    arms = [r.restricted(ids) for r in results]
    out = [f"problems finished by every arm: {len(ids)}", "",
           "| arm | n | accuracy ± SE | any finished path correct | finished paths / problem | gen tok / problem "
           "| calls / problem | judge tok / problem | wall s (pieces) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for a in arms:
        acc, se = accuracy_se(list(a.correct.values()))
        anyp, _ = accuracy_se(list(a.any_leaf.values()))
        leaves = sum(a.leaves.values()) / len(a.leaves) if a.leaves else 0.0
        judge = sum(a.judge_tokens.values()) / a.n if a.n else 0.0
        out.append(f"| {a.label} | {a.n} | {acc:.3f} ± {se:.3f} | {anyp:.3f} | {leaves:.1f} | "
                   f"{a.tokens_per_problem:.1f} | {a.calls_per_problem:.1f} | {judge:.0f} | "
                   f"{a.wall_seconds:.0f} ({len(a.walls)}) |")
    refs = [a for a in arms if not a.judged]
    judged = [a for a in arms if a.judged]
    if refs and judged:
        out += ["", "| judged arm | vs SC arm | token ratio | accuracy difference ± SE (paired) | n | wins / losses | note |",
                "|---|---|---|---|---|---|---|"]
        for a in judged:
            ref = nearest_reference(a, refs)
            if ref is None:
                continue
            ratio = a.tokens_per_problem / ref.tokens_per_problem
            diff, se, n = paired_difference(ref.correct, a.correct)
            note = "" if abs(ratio - 1.0) <= TOKEN_MATCH else "NOT at equal tokens (> 10 % apart)"
            wins = sum(a.correct[i] and not ref.correct[i] for i in a.correct)
            losses = sum(ref.correct[i] and not a.correct[i] for i in a.correct)
            out.append(f"| {a.label} | {ref.label} | {ratio:.2f} | {diff:+.3f} ± {se:.3f} | {n} | {wins} / {losses} "
                       f"| {note} |")
    notes = [line for a in arms for line in verdict_lines(a)]
    return out + ([""] + notes if notes else [])


def record_wall(run_dir: Path, problems: int, wall_seconds: float, note: str) -> None:
    """Appends one invocation's wall time to the arm's ``bench_walls.jsonl``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "bench_walls.jsonl").open("a") as f:
        f.write(json.dumps({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "problems": problems,
                            "wall_seconds": round(wall_seconds, 2), "machine": note}) + "\n")
