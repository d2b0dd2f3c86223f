"""Answer-level preference pairs from self-refine trees (MC-NEST / MCTSr), by the MCTSr recipe
(spec 01 §10), in the ``pairs`` format of ``training.export.formats`` (``prompt``, ``chosen``,
``rejected``, ``margin``, ``problem_id``).

It needs to know which answers are correct, so it runs on finished traces with the task's
verifier (``verify_fn``), never inside a search. Re-implemented from parent / children ids
(the reference script's path helper is buggy, spec 01 §10):

1. Gold nodes: answer nodes whose text the verifier accepts.
2. Structure reward: along the path from each gold node up to its root, the i-th node gets
   ``0.9 ** i`` (the gold node i = 0; a node on several paths keeps the largest); a root with
   none gets ``min(assigned) * 0.9``; every other node its parent's reward * 0.45, top-down.
3. Pairs per gold path (other gold nodes taken out of it): a path of two nodes gives one pair;
   a longer one ``len(path) ** 2 // 2`` pairs drawn with probability proportional to the
   reward gap ``|r_i - r_j|`` (pairwise importance sampling). The higher reward is chosen.

MCTSr's script keeps a random 1% of all pairs; ``keep_fraction`` defaults to 1 (all), since
ponder's runs are small.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable

from search.trace import SearchTrace
from search.tree import Tree
from training.export.formats import DEFAULT_QUESTION_SEP, Rows, render_prompt

SELF_REFINE = ("mc_nest", "mctsr")
"""Algorithms whose traces hold whole-answer nodes."""
GOLD_DECAY, OFF_PATH_DECAY = 0.9, 0.45


def structure_rewards(tree: Tree, gold: set[int]) -> dict[int, float]:
    """Spec 01 §10 step 2: a structure reward for every answer node (empty without gold)."""
    rewards: dict[int, float] = {}
    for g in sorted(gold):
        for i, node_id in enumerate(reversed(tree.path(g)[1:])):
            rewards[node_id] = max(rewards.get(node_id, 0.0), GOLD_DECAY**i)
    if not rewards:
        return {}
    roots = tree.nodes[0].children
    floor = min(rewards.values()) * GOLD_DECAY
    for r in roots:
        rewards.setdefault(r, floor)
    queue = list(roots)
    for node_id in queue:
        for c in tree.nodes[node_id].children:
            rewards.setdefault(c, rewards[node_id] * OFF_PATH_DECAY)
            queue.append(c)
    return rewards


def path_pairs(path: list[int], rewards: dict[int, float], rng: random.Random) -> list[tuple[int, int]]:
    """Spec 01 §10 step 3: (chosen, rejected) node pairs of one gold path."""
    if len(path) < 2:
        return []
    if len(path) == 2:
        a, b = path
        return [(a, b) if rewards[a] >= rewards[b] else (b, a)]
    combos = [(a, b) for a, b in itertools.combinations(path, 2) if rewards[a] != rewards[b]]
    if not combos:
        return []
    weights = [abs(rewards[a] - rewards[b]) for a, b in combos]
    drawn = rng.choices(combos, weights=weights, k=len(path) ** 2 // 2)
    return [(a, b) if rewards[a] > rewards[b] else (b, a) for a, b in drawn]


def refine_pair_rows(traces: Iterable[SearchTrace], verify_fn: Callable[[str, str], bool | None], *,
                     seed: int = 0, keep_fraction: float = 1.0,
                     question_sep: str = DEFAULT_QUESTION_SEP) -> Rows:
    """DPO pairs from self-refine traces (other traces are skipped).

    Args:
        traces: Search traces; only ``mc_nest`` / ``mctsr`` ones are used.
        verify_fn: ``(problem_id, answer text) -> correct`` (None: could not check = not gold).
        seed: Seed of the pair sampling and of the ``keep_fraction`` draw.
        keep_fraction: Share of pairs kept, in (0, 1] (MCTSr: 0.01).
        question_sep: Text after the question in the prompt (the answer follows it).

    Returns:
        Rows with ``prompt``, ``chosen``, ``rejected``, ``margin`` (structure-reward gap),
        ``problem_id``; pairs whose two texts are equal are dropped.
    """
    rng, out, seen = random.Random(seed), Rows(), set()
    used: set[str] = set()
    for trace in sorted(traces, key=lambda t: t.problem_id):
        if trace.algorithm not in SELF_REFINE:
            continue
        tree = trace.to_tree()
        answers = [n.id for n in tree.nodes[1:] if n.is_answer and n.error is None]
        gold = {i for i in answers if verify_fn(trace.problem_id, tree.nodes[i].text)}
        rewards = structure_rewards(tree, gold)
        prompt = render_prompt(trace.question, (), question_sep)
        for g in sorted(gold):
            path = [i for i in reversed(tree.path(g)[1:]) if i == g or i not in gold]
            for hi, lo in path_pairs(path, rewards, rng):
                chosen, rejected = tree.nodes[hi].text, tree.nodes[lo].text
                if chosen == rejected or rng.random() >= keep_fraction:
                    continue
                out.rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected,
                                 "margin": rewards[hi] - rewards[lo], "problem_id": trace.problem_id})
                for i, text in ((hi, chosen), (lo, rejected)):
                    if (trace.problem_id, i) not in seen:
                        seen.add((trace.problem_id, i))
                        out.step_chars.append(len(text))
                        out.step_tokens.append(len(tree.nodes[i].token_ids))
                used.add(trace.problem_id)
    out.stats["problems_with_gold"] = len(used)
    out.stats["mean_margin"] = sum(r["margin"] for r in out.rows) / len(out.rows) if out.rows else None
    out.notes.append("MCTSr recipe (spec 01 §10): structure rewards 0.9^i along paths to verified answers; "
                     "pairs drawn by reward gap.")
    return out
