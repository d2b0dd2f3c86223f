"""Selection rules: pure scores of a child given its parent, and child pickers.

Every score takes plain numbers, so each formula can be checked by hand against its spec.
``make_select_fn`` turns one into a picker over a node's live children that sees
in-flight simulations through virtual loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

from search.tree import Node, Tree

SelectionRule = Literal["uct", "puct", "x1"]
SelectFn = Callable[[Tree, int, Sequence[int]], int]
"""(tree, parent id, candidate child ids) -> chosen child id."""


def uct_score(q: float, visits: int, parent_visits: int, c: float, unvisited_bonus: float | None = None) -> float:
    """ReST-MCTS* UCT (spec 02 §3): ``Q + c * sqrt(2 ln N_parent / n)``; when ``n == 0``,
    ``Q + unvisited_bonus`` (the code's ``V + INF``, Q being the child's initial value) or
    +inf without a bonus.

    Args:
        q: Value of the child (ReST-MCTS*'s quality value), in [0, 1].
        visits: Child visit count n >= 0.
        parent_visits: Parent visit count N >= 0.
        c: Exploration constant (ReST-MCTS* uses 0.4-0.7).
        unvisited_bonus: ReST-MCTS*'s INF (0.8-1.0); None: unvisited children come first.
    """
    if visits == 0:
        return math.inf if unvisited_bonus is None else q + unvisited_bonus
    return q + c * math.sqrt(2.0 * math.log(max(parent_visits, 1)) / visits)


def puct_score(q: float, prior: float, visits: int, parent_visits: int, c: float) -> float:
    """AlphaMath PUCT: ``Q + c * P * sqrt(N_parent) / (1 + N)``.

    Args:
        q: Mean value of the child (0 when unvisited, as in AlphaMath).
        prior: P = exp(mean token logprob) in (0, 1], not renormalised over siblings.
        visits: Child visit count N >= 0.
        parent_visits: Parent visit count >= 0.
        c: c_puct (AlphaMath: 1.25 at inference, 1.5 in round 1).
    """
    return q + c * prior * math.sqrt(parent_visits) / (1 + visits)


def x1_score(
    q: float,
    visits: int,
    parent_visits: int,
    c1: float = 1.25,
    c2: float = 19652.0,
    q_min: float = -1.0,
    q_max: float = 1.0,
) -> float:
    """x1's PUCT variant (spec 07 §2): ``norm(q) + sqrt(N_s - 1)/(1 + N) * (c1 + log((N_s + c2)/c2))``.

    ``norm`` maps q from ``[q_min, q_max]`` into [0, 1] (x1's code: reward range [-1, 1]).
    The ``- 1`` reflects that x1 creates children with one visit; it is clamped at 0.

    Args:
        q: Child value in [q_min, q_max].
        visits: Child visit count N >= 0.
        parent_visits: Parent visit count N_s >= 0.
        c1: First exploration constant (1.25).
        c2: Second exploration constant (19652).
        q_min: Lowest value (x1: -1).
        q_max: Highest value (x1: 1).
    """
    norm_q = (q - q_min) / (q_max - q_min)
    explore = math.sqrt(max(parent_visits - 1, 0)) / (1 + visits)
    return norm_q + explore * (c1 + math.log((parent_visits + c2) / c2))


def effective_stats(node: Node, loss_value: float) -> tuple[int, float]:
    """(visits, mean value) with the node's virtual loss counted as visits of ``loss_value``."""
    visits = node.visits + node.virtual_loss
    if visits == 0:
        return 0, 0.0
    return visits, (node.value_sum + node.virtual_loss * loss_value) / visits


def make_select_fn(
    rule: SelectionRule,
    c: float,
    *,
    c2: float = 19652.0,
    q_range: tuple[float, float] = (0.0, 1.0),
    loss_value: float = 0.0,
    unvisited_bonus: float | None = None,
) -> SelectFn:
    """A picker of the best child by ``rule``; ties go to the earliest created child.

    Args:
        rule: ``uct`` (ReST-MCTS*), ``puct`` (AlphaMath) or ``x1``.
        c: Exploration constant (x1: c1).
        c2: x1's second constant.
        q_range: Value range for x1's normalisation (ponder's values lie in [0, 1]).
        loss_value: Value one virtual visit counts as (the lowest value: a loss).
        unvisited_bonus: uct only: an unvisited child scores its first value plus this
            (ReST-MCTS*'s INF) instead of +inf.
    """

    def score(child: Node, parent: Node) -> float:
        n, q = effective_stats(child, loss_value)
        parent_n, _ = effective_stats(parent, loss_value)
        match rule:
            case "uct":
                return uct_score(q if n else (child.first_value or 0.0), n, parent_n, c, unvisited_bonus)
            case "puct":
                return puct_score(q, child.prior, n, parent_n, c)
            case "x1":
                return x1_score(q, n, parent_n, c, c2, *q_range)

    def select(tree: Tree, parent_id: int, candidates: Sequence[int]) -> int:
        parent = tree.nodes[parent_id]
        return max(candidates, key=lambda i: (score(tree.nodes[i], parent), -i))

    return select


def add_virtual_loss(tree: Tree, path: Sequence[int], amount: int = 1) -> None:
    """Adds ``amount`` pending visits to every node of ``path`` (negative to remove)."""
    for node_id in path:
        tree.nodes[node_id].virtual_loss += amount


def bfs_priority(step_mean_logprobs: Sequence[float], alpha: float) -> float:
    """BFS-Prover priority (spec 04 §2): ``Σ per-step mean token logprob / depth ** alpha``.

    Larger is better. The root (no steps, depth 0) gets 0 without the division.

    Args:
        step_mean_logprobs: Mean token logprob of each step of the path (each <= 0).
        alpha: Depth exponent >= 0 (V2 code default 0; its run script 2.0); larger
            alpha penalises deep paths less.
    """
    depth = len(step_mean_logprobs)
    if depth == 0:
        return 0.0
    return sum(step_mean_logprobs) / depth**alpha


# --- Self-refine searches (MC-NEST / MCTSr, spec 01 §5): a global pick among candidates ---

RefinePolicy = Literal["greedy", "importance_sampling", "pairwise_importance_sampling"]
ExpandedRule = Literal["or", "and"]
ROOT_UCT = 10000.0
"""MC-NEST's UCT of a node without a parent (spec 01 §5.2)."""


def mc_nest_uct(q: float, visits: int, parent_visits: int | None, c: float = 1.0, eps: float = 1e-10) -> float:
    """MC-NEST (spec 01 §5.2): ``Q + c * sqrt(ln(N_parent + 1) / (N + eps))``; a root
    (``parent_visits`` None) scores :data:`ROOT_UCT`."""
    if parent_visits is None:
        return ROOT_UCT
    return q + c * math.sqrt(math.log(parent_visits + 1) / (visits + eps))


def mctsr_ucb(q_hat: float, visits: int, parent_visits: int, c: float = 1.4, eps: float = 1e-5) -> float:
    """MCTSr code (spec 01 §5.2): ``Qhat + C * sqrt(ln(N_parent + 1) / (N + eps))``; roots
    have ``parent_visits`` 0, so their exploration term is 0. ``q_hat`` is
    ``(Q + max child Q) / 2`` for a node with children, else Q."""
    return q_hat + c * math.sqrt(math.log(parent_visits + 1) / (visits + eps))


def fully_expanded(num_children: int, child_qs: Sequence[float], q: float, rule: ExpandedRule, max_children: int) -> bool:
    """Spec 01 §5.1: MC-NEST ``or`` (``>= max_children`` children OR a child with Q > the
    node's) and MCTSr ``and`` (``>= max_children`` children AND a child with Q >= the node's)."""
    if rule == "or":
        return num_children >= max_children or any(cq > q for cq in child_qs)
    return num_children >= max_children and any(cq >= q for cq in child_qs)


def nash_prior(candidates: Sequence[int], support: Sequence[int]) -> list[float]:
    """The "Nash equilibrium" strategy (spec 01 §5.3): uniform over ``support`` (MC-NEST code:
    the root's children; or the candidates themselves), 0 for every candidate outside it."""
    inside = set(support)
    p = 1.0 / len(inside) if inside else 0.0
    return [p if c in inside else 0.0 for c in candidates]


def selection_probabilities(policy: RefinePolicy, ucts: Sequence[float], prior: Sequence[float] | None) -> list[float]:
    """The probability of picking each candidate (spec 01 §5.4), ``prior`` None: non-NE.

    - greedy: all mass on ``argmax(UCT + pi)`` (non-NE: ``argmax UCT``); ties go to the first.
    - importance_sampling: ``w = max(UCT * pi, 0)`` (non-NE: ``max(UCT, 0)``), normalised;
      negative weights are clipped (the code passes them to ``random.choices`` unchecked).
    - pairwise_importance_sampling: a pair is drawn with weight ``|UCT_i - UCT_j| * pi_i * pi_j``
      over unordered pairs i < j (non-NE: ``max - min`` over ordered pairs, i = j included)
      and its higher-UCT member (ties: the first) is picked; returned as each candidate's
      marginal probability of being picked.

    A total weight <= 0 gives the uniform distribution (the codes' random fallback).
    """
    k = len(ucts)
    if k == 0:
        return []
    pi = list(prior) if prior is not None else [1.0] * k
    if policy == "greedy":
        keys = [u + p for u, p in zip(ucts, pi)] if prior is not None else list(ucts)
        best = max(range(k), key=lambda i: (keys[i], -i))
        return [1.0 if i == best else 0.0 for i in range(k)]
    weights = [0.0] * k
    if policy == "importance_sampling":
        weights = [max(u * p, 0.0) for u, p in zip(ucts, pi)]
    else:
        for i in range(k):
            for j in range(i if prior is None else i + 1, k):
                w = abs(ucts[i] - ucts[j]) * (pi[i] * pi[j] if prior is not None else 1.0)
                pairs = 1 if (prior is not None or i == j) else 2  # ordered pairs (i, j) and (j, i)
                weights[i if ucts[i] >= ucts[j] else j] += pairs * w
    total = sum(weights)
    if total <= 0.0:
        return [1.0 / k] * k
    return [w / total for w in weights]
