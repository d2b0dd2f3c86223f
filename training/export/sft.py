"""Policy SFT rows: the correct solutions a search found (ReST-MCTS*, spec 02 section 7).

A solution is an end leaf of the tree (``search.aggregate.end_leaves``: terminal or
closed by an end gate, not errored) and its path text as generated. Its correctness is
read from the node's ``scores["verifier"]`` (label runs store the oracle's reward there;
1.0 = correct), else asked of ``verify_fn`` (``training.export`` checks the text against
the gold answers of the run's task set: offline data generation may use the gold). Only
correct solutions become rows ("CoT and MCTS only include positive samples").

Spec 02 section 7's optional value-critic filter is off by default: ``min_value`` keeps
leaves whose value (``leaf_value``) is at least that, ``min_chars`` keeps solutions of at
least that many characters (the paper's 0.2 and 50). Identical solution texts of one
problem are emitted once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from search.aggregate import end_leaves
from search.trace import SearchTrace
from search.tree import Node
from training.export.formats import DEFAULT_QUESTION_SEP, Rows, render_prompt

VerifyFn = Callable[[str, str], bool | None]
"""``(problem_id, solution_text) -> correct``, or None when it cannot be told."""


def leaf_value(node: Node) -> float | None:
    """The value-critic score of an end leaf: its first value estimate (the value model's
    score), else Q = W / N when visited, else None."""
    if node.first_value is not None:
        return node.first_value
    return node.value if node.visits > 0 else None


def chat_prompt(question: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The conversational prompt the search's policy saw: optional system turn, user turn."""
    turns = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*turns, {"role": "user", "content": question}]


def sft_rows(traces: Iterable[SearchTrace], verify_fn: VerifyFn | None = None, *,
             min_value: float | None = None, min_chars: int | None = None,
             question_sep: str = DEFAULT_QUESTION_SEP, chat: bool = False,
             system_prompt: str | None = None) -> Rows:
    """Prompt-completion rows of correct end-leaf solutions.

    Args:
        traces: Search traces (one per problem).
        verify_fn: Correctness of a solution without a stored verifier score; None: such
            leaves are left out (and counted as unverified).
        min_value: Keep leaves whose ``leaf_value`` is >= this (unknown values fail);
            None: no value filter.
        min_chars: Keep solutions of at least this many characters; None: no length filter.
        question_sep: Text between the question and the solution (standard format).
        chat: Conversational rows: ``prompt`` is a list of messages (``chat_prompt``),
            ``completion`` one assistant message; TRL applies the chat template.
        system_prompt: The system turn of conversational prompts (the run's
            ``model.system_prompt``); None: none.

    Returns:
        Rows with ``prompt``, ``completion``, ``problem_id``.
    """
    out = Rows()
    counts = {"end_leaves": 0, "filtered_out": 0, "duplicates": 0, "verified": 0,
              "correct": 0, "unverified": 0}
    for trace in sorted(traces, key=lambda t: t.problem_id):
        tree = trace.to_tree()
        seen: set[str] = set()
        for leaf_id in end_leaves(tree):
            counts["end_leaves"] += 1
            node, text = tree[leaf_id], tree.path_text(leaf_id)
            value = leaf_value(node)
            if (min_chars is not None and len(text) < min_chars) or (
                    min_value is not None and (value is None or value < min_value)):
                counts["filtered_out"] += 1
                continue
            if text in seen:
                counts["duplicates"] += 1
                continue
            seen.add(text)
            correct = _correct(node, trace.problem_id, text, verify_fn)
            if correct is None:
                counts["unverified"] += 1
                continue
            counts["verified"] += 1
            if not correct:
                continue
            counts["correct"] += 1
            out.rows.append(_row(trace, text, question_sep, chat, system_prompt))
            out.step_chars.append(len(text))
            out.step_tokens.append(sum(len(tree[i].token_ids) for i in tree.path(leaf_id)[1:]))
    out.stats.update(counts)
    out.stats["share_correct"] = counts["correct"] / counts["verified"] if counts["verified"] else None
    if counts["unverified"]:
        out.notes.append(f"{counts['unverified']} solution(s) had no verifier score and could not "
                         "be checked (no task set), so they were left out.")
    return out


def _correct(node: Node, problem_id: str, text: str, verify_fn: VerifyFn | None) -> bool | None:
    stored = node.scores.get("verifier")
    if stored is not None:
        return stored >= 0.5
    return verify_fn(problem_id, text) if verify_fn is not None else None


def _row(trace: SearchTrace, text: str, question_sep: str, chat: bool,
         system_prompt: str | None) -> dict[str, Any]:
    if chat:
        return {"prompt": chat_prompt(trace.question, system_prompt),
                "completion": [{"role": "assistant", "content": text}],
                "problem_id": trace.problem_id}
    return {"prompt": render_prompt(trace.question, (), question_sep), "completion": text,
            "problem_id": trace.problem_id}
