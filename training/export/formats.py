"""Row builders: step labels and trees -> rows in TRL's dataset formats (standard, plain text).

Columns keep TRL's names. Every row also carries ``problem_id`` (TRL trainers drop columns
they do not use), so a dataset can be split by problem without leaking one problem into
both halves.

Prompts. In the standard (non-conversational) format TRL joins ``prompt`` and the
completion text with nothing in between, so every prompt here is
``question + question_sep + prefix`` (``render_prompt``; ``question_sep`` defaults to a
blank line, the default step delimiter) and ``prompt + completion`` reads as the
generated solution. Set ``question_sep=""`` for the bare question.

Formats built here (``sft`` lives in ``training.export.sft``):

- ``prm`` (stepwise supervision): ``prompt``, ``completions`` (step texts, stripped of
  surrounding whitespace: the trainer puts its step separator after each step and reads
  the label there, as ``models.pooling_prm`` does at inference), ``labels`` (``list[bool]``,
  or ``list[float]`` in [0, 1] with ``soft``).
- ``pairs`` (step-level preference): ``prompt`` (question + prefix as generated),
  ``chosen``, ``rejected`` (sibling step texts as generated), ``margin`` (chosen value -
  rejected value, in (0, 1]; TRL's RewardTrainer subtracts a ``margin`` column inside its
  loss; drop the column for a plain Bradley-Terry loss). Values come from one generator's
  labels (``pair_rows_from_labels``) or from the tree itself (``pair_rows_from_traces``).
- ``value`` (regression targets, ReST-MCTS* spec 02 section 7): ``prompt`` (question +
  ``question_sep``), ``completion`` (prefix + step text as generated), ``value`` in [0, 1].
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from search.labels.records import StepLabel
from search.protocols import ConfigError
from search.trace import SearchTrace
from search.tree import Node

DEFAULT_QUESTION_SEP = "\n\n"


@dataclasses.dataclass
class Rows:
    """Rows of one dataset and what its card reports.

    Attributes:
        rows: One dict per row, columns as in the format's features.
        step_chars: Character count of each distinct step (or solution) used.
        step_tokens: Token count of the same, where known.
        stats: Format-specific figures for the card (label balance, counts left out).
        notes: Sentences for the card (choices made, things left out).
    """

    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    step_chars: list[int] = dataclasses.field(default_factory=list)
    step_tokens: list[int] = dataclasses.field(default_factory=list)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def num_problems(self) -> int:
        """Distinct problems with at least one row."""
        return len({r["problem_id"] for r in self.rows})


def render_prompt(question: str, prefix: Sequence[str] = (), question_sep: str = DEFAULT_QUESTION_SEP) -> str:
    """The plain-text prompt before a step: question, separator, prefix steps as generated."""
    return question + question_sep + "".join(prefix)


def select_labels(labels: Iterable[StepLabel], generator: str | None) -> tuple[list[StepLabel], str | None]:
    """The labels of one generator.

    Args:
        labels: Labels of every generator.
        generator: The one to keep; None: the only one present.

    Returns:
        The kept labels (file order) and the generator they come from (None when there are
        no labels at all).

    Raises:
        ConfigError: ``generator`` is None and the labels come from several generators.
    """
    labels = list(labels)
    if generator is not None:
        return [lab for lab in labels if lab.generator == generator], generator
    present = sorted({lab.generator for lab in labels})
    if len(present) > 1:
        raise ConfigError("generator", None, f"the labels come from several generators "
                          f"({', '.join(present)}); choose one")
    return labels, (present[0] if present else None)


def _state(label: StepLabel) -> str:
    """The labelled partial solution as text; two labels of one problem with the same text
    label the same state (a span of several steps equals those steps one by one)."""
    return "".join(label.prefix) + label.step


def _by_problem(labels: Iterable[StepLabel]) -> dict[str, list[StepLabel]]:
    grouped: dict[str, list[StepLabel]] = defaultdict(list)
    for label in labels:
        grouped[label.problem_id].append(label)
    return {k: grouped[k] for k in sorted(grouped)}


def _unique_states(labels: Iterable[StepLabel]) -> dict[str, StepLabel]:
    """Labels by state text; the first label of a state wins (file order)."""
    states: dict[str, StepLabel] = {}
    for label in labels:
        states.setdefault(_state(label), label)
    return states


def prm_rows(labels: Iterable[StepLabel], *, soft: bool = False,
             question_sep: str = DEFAULT_QUESTION_SEP) -> Rows:
    """Stepwise-supervision rows from one generator's labels.

    Labels are chained parent -> child where a label's prefix text equals another label's
    prefix + step text. Each row is one root-to-maximal chain: it ends at a labelled step
    that no other label continues, and starts at the first step whose own prefix is not
    labelled. That unlabelled prefix (empty for chains from the first step) cannot be a
    completion without a label, so it is folded into the prompt as generated. A label
    without the needed target (``label`` for hard rows, ``value`` with ``soft``) counts as
    unlabelled. Identical rows are emitted once.

    Args:
        labels: Step labels of ONE generator (see ``select_labels``).
        soft: Float targets (``value`` in [0, 1]) instead of booleans (``label``).
        question_sep: Text between the question and the first step.

    Returns:
        Rows with ``prompt``, ``completions``, ``labels``, ``problem_id``.
    """
    out = Rows()
    targets: list[float] = []
    folded = 0
    for problem_id, group in _by_problem(labels).items():
        known = [lab for lab in group if (lab.value if soft else lab.label) is not None]
        states = _unique_states(known)
        continued = {"".join(lab.prefix) for lab in states.values() if lab.step}
        seen: set[tuple[Any, ...]] = set()
        for key, leaf in states.items():
            if key in continued:
                continue  # another label continues this one: not the end of a chain
            chain = [leaf]
            while True:
                parent_key = "".join(chain[0].prefix)
                parent = states.get(parent_key)
                if parent is None or len(parent_key) >= len(_state(chain[0])):
                    break
                chain.insert(0, parent)
            values = [float(lab.value) if soft else bool(lab.label) for lab in chain]  # type: ignore[arg-type]
            row = {
                "prompt": render_prompt(leaf.question, chain[0].prefix, question_sep),
                "completions": [lab.step.strip() for lab in chain],
                "labels": values,
                "problem_id": problem_id,
            }
            ident = (row["prompt"], tuple(row["completions"]), tuple(values))
            if ident in seen:
                continue
            seen.add(ident)
            folded += bool(chain[0].prefix)
            out.rows.append(row)
        for lab in states.values():
            out.step_chars.append(len(lab.step.strip()))
            out.step_tokens.append(lab.step_tokens)
            targets.append(float(lab.value) if soft else float(bool(lab.label)))  # type: ignore[arg-type]
    out.stats["labelled_steps"] = len(targets)
    out.stats["mean_value" if soft else "share_true"] = _mean(targets)
    out.stats["rows_with_folded_prefix"] = folded
    if folded:
        out.notes.append(f"{folded} row(s) start after an unlabelled prefix, which is part of their prompt.")
    return out


def value_rows(labels: Iterable[StepLabel], *, question_sep: str = DEFAULT_QUESTION_SEP) -> Rows:
    """Value-regression rows: one per labelled state with a known ``value``.

    Args:
        labels: Step labels of ONE generator.
        question_sep: Text between the question and the solution.

    Returns:
        Rows with ``prompt`` (question + separator), ``completion`` (prefix + step as
        generated), ``value`` in [0, 1], ``problem_id``. The first label of a state wins.
    """
    out = Rows()
    for problem_id, group in _by_problem(labels).items():
        for key, lab in _unique_states(lab for lab in group if lab.value is not None).items():
            out.rows.append({"prompt": render_prompt(lab.question, (), question_sep),
                             "completion": key, "value": float(lab.value),  # type: ignore[arg-type]
                             "problem_id": problem_id})
            out.step_chars.append(len(lab.step))
            out.step_tokens.append(lab.step_tokens)
    out.stats["mean_value"] = _mean([r["value"] for r in out.rows])
    return out


@dataclasses.dataclass(frozen=True)
class _Candidate:
    text: str
    value: float
    tokens: int | None


def _pairs(candidates: Sequence[_Candidate], margin: float, max_pairs: int | None
           ) -> list[tuple[_Candidate, _Candidate]]:
    """Every (higher, lower) pair of distinct sibling texts whose value gap exceeds ``margin``;
    with ``max_pairs``, the largest gaps first (ties in sibling order)."""
    unique: dict[str, _Candidate] = {}
    for c in candidates:
        unique.setdefault(c.text, c)
    ordered = sorted(unique.values(), key=lambda c: -c.value)  # stable: sibling order on ties
    pairs = [(hi, lo) for hi, lo in itertools.combinations(ordered, 2) if hi.value - lo.value > margin]
    if max_pairs is not None:
        pairs = sorted(pairs, key=lambda p: -(p[0].value - p[1].value))[:max_pairs]
    return pairs


def _emit_pairs(out: Rows, used: dict[tuple[str, str], _Candidate], problem_id: str, prompt: str,
                candidates: Sequence[_Candidate], margin: float, max_pairs: int | None) -> None:
    for hi, lo in _pairs(candidates, margin, max_pairs):
        out.rows.append({"prompt": prompt, "chosen": hi.text, "rejected": lo.text,
                         "margin": hi.value - lo.value, "problem_id": problem_id})
        for c in (hi, lo):
            used.setdefault((prompt, c.text), c)


def _finish_pairs(out: Rows, used: dict[tuple[str, str], _Candidate]) -> Rows:
    for c in used.values():
        out.step_chars.append(len(c.text))
        if c.tokens is not None:
            out.step_tokens.append(c.tokens)
    out.stats["mean_margin"] = _mean([r["margin"] for r in out.rows])
    return out


def pair_rows_from_labels(labels: Iterable[StepLabel], *, margin: float = 0.0,
                          max_pairs_per_parent: int | None = None,
                          question_sep: str = DEFAULT_QUESTION_SEP) -> Rows:
    """Step preference pairs from one generator's labels.

    Siblings are labels of one problem with the same prefix text. A label's value is its
    ``value``, else its hard ``label`` as 1.0 / 0.0; labels with neither are skipped.
    Siblings with the same step text count once (first label wins).

    Args:
        labels: Step labels of ONE generator.
        margin: Keep pairs whose value gap is strictly greater (0.0: strictly different).
        max_pairs_per_parent: At most this many pairs per prefix, largest gaps first;
            None: every pair.
        question_sep: Text between the question and the prefix.

    Returns:
        Rows with ``prompt``, ``chosen``, ``rejected``, ``margin``, ``problem_id``.
    """
    out, used = Rows(), {}
    for problem_id, group in _by_problem(labels).items():
        siblings: dict[str, list[StepLabel]] = defaultdict(list)
        for lab in group:
            if lab.value is not None or lab.label is not None:
                siblings["".join(lab.prefix)].append(lab)
        for prefix_text, labs in siblings.items():
            prompt = render_prompt(labs[0].question, (prefix_text,), question_sep)
            candidates = [_Candidate(lab.step, float(lab.value) if lab.value is not None
                                     else float(bool(lab.label)), lab.step_tokens) for lab in labs]
            _emit_pairs(out, used, problem_id, prompt, candidates, margin, max_pairs_per_parent)
    return _finish_pairs(out, used)


SCORE_KEYS = ("prm", "self_eval", "rollout")
"""Step scores a node's value falls back to, in this order (beam searches back nothing up)."""


def node_value(node: Node) -> float | None:
    """A node's value for preference pairs: Q = W / N when visited, else its first value
    estimate, else its first step score among ``SCORE_KEYS``, else None (unknown)."""
    if node.visits > 0:
        return node.value
    if node.first_value is not None:
        return node.first_value
    return next((node.scores[k] for k in SCORE_KEYS if k in node.scores), None)


def pair_rows_from_traces(traces: Iterable[SearchTrace], *, margin: float = 0.0,
                          max_pairs_per_parent: int | None = None,
                          question_sep: str = DEFAULT_QUESTION_SEP) -> Rows:
    """Step preference pairs from the values the search itself gave sibling nodes.

    Siblings are the children of one tree node; errored children and children with no
    value (``node_value`` None) are skipped; children with the same text count once.

    Args:
        traces: Search traces (one per problem).
        margin: Keep pairs whose value gap is strictly greater (0.0: strictly different).
        max_pairs_per_parent: At most this many pairs per parent, largest gaps first.
        question_sep: Text between the question and the prefix.

    Returns:
        Rows with ``prompt``, ``chosen``, ``rejected``, ``margin``, ``problem_id``.
    """
    out, used = Rows(), {}
    for trace in sorted(traces, key=lambda t: t.problem_id):
        tree = trace.to_tree()
        for parent in tree.nodes:
            if len(parent.children) < 2:
                continue
            candidates = []
            for child in (tree[i] for i in parent.children):
                value = node_value(child)
                if child.error is None and value is not None:
                    candidates.append(_Candidate(child.text, value, len(child.token_ids)))
            prompt = render_prompt(trace.question, tree.path_texts(parent.id), question_sep)
            _emit_pairs(out, used, trace.problem_id, prompt, candidates, margin, max_pairs_per_parent)
    return _finish_pairs(out, used)


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None
