"""Builds small run directories by hand: config.yaml, results.jsonl, traces/, labels/.

The layout is the one ``ponder.rundir`` writes; traces are made from real ``Tree`` and
``SearchResult`` objects, labels from ``StepLabel`` objects, so the exporters read what a
real run would leave.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from search.labels.records import StepLabel
from search.protocols import Problem, StepProposal, Usage
from search.trace import SearchResult
from search.tree import Tree

QUESTION = "What is 2+3?"
S_TWO = "Two plus three.\n\n"
S_GUESS = "Guess.\n\n"
S_FIVE = "The answer is 5."
S_SIX = "The answer is 6."


def safe_name(problem_id: str) -> str:
    """The file stem ``ponder.rundir`` uses for a problem id."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", problem_id)[:200]


def add(tree: Tree, parent: int, text: str, *, terminal: bool = False, **fields: Any) -> int:
    """Adds a child step (token ids: one per character) and sets further node fields."""
    tokens = tuple(range(len(text)))
    proposal = StepProposal(text=text, token_ids=tokens, logprobs=(-0.1,) * len(tokens),
                            finish_reason="stop")
    node = tree.add_child(parent, proposal, terminal=terminal)
    for name, value in fields.items():
        setattr(node, name, value)
    return node.id


def main_tree() -> Tree:
    """The tree of problem p1.

    ::

        0 root
        |- 1 S_TWO            Q = 0.9
        |  |- 3 S_FIVE        terminal, verifier 1.0, first_value 0.9, Q = 1
        |  |- 4 S_SIX         terminal, verifier 0.0, Q = 0
        |  `- 7 S_FIVE        terminal, verifier 1.0, unvisited (same solution as 3)
        |- 2 S_GUESS          Q = 1/4
        |  `- 5 S_FIVE        end-gated (not terminal), verifier 1.0, first_value 0.1
        `- 6 "Broken"         terminal but errored
    """
    tree = Tree(root_prefix=(101, 102))
    n1 = add(tree, 0, S_TWO, visits=4, value_sum=3.6)
    n2 = add(tree, 0, S_GUESS, visits=2, value_sum=0.5)
    add(tree, n1, S_FIVE, terminal=True, answer="5", scores={"verifier": 1.0}, visits=1,
        value_sum=1.0, first_value=0.9)
    add(tree, n1, S_SIX, terminal=True, answer="6", scores={"verifier": 0.0}, visits=1, value_sum=0.0)
    add(tree, n2, S_FIVE, end=True, answer="5", scores={"verifier": 1.0}, first_value=0.1)
    add(tree, 0, "Broken", terminal=True, error="ModelServerError: boom")
    add(tree, n1, S_FIVE, terminal=True, answer="5", scores={"verifier": 1.0})
    return tree


def trace_of(tree: Tree, problem_id: str, question: str = QUESTION, algorithm: str = "mcts") -> dict:
    """The trace JSON of a search over ``tree``."""
    result = SearchResult(answer="5", path=[0, 1, 3], tree=tree, usage=Usage(calls=3),
                          algorithm=algorithm, config={"algorithm": algorithm})
    return result.to_trace(Problem(problem_id, question)).model_dump(mode="json")


def label(prefix: list[str], step: str, *, value: float | None, hard: bool | None,
          generator: str = "math_shepherd", problem_id: str = "p1", node_id: int | None = None,
          question: str = QUESTION) -> StepLabel:
    """One step label (tokens: one per character)."""
    return StepLabel(problem_id=problem_id, question=question, generator=generator, mode="per_step",
                     node_id=node_id, prefix=prefix, step=step, step_tokens=len(step),
                     depth=len(prefix) + 1, value=value, label=hard, model="fake-policy")


def main_labels() -> list[StepLabel]:
    """math_shepherd labels of every step of p1 (node 1, 3, 4, 2, 5), one duplicated."""
    return [
        label([], S_TWO, value=0.5, hard=True, node_id=1),
        label([S_TWO], S_FIVE, value=1.0, hard=True, node_id=3),
        label([S_TWO], S_SIX, value=0.0, hard=False, node_id=4),
        label([], S_GUESS, value=0.0, hard=False, node_id=2),
        label([S_GUESS], S_FIVE, value=1.0, hard=True, node_id=5),
        label([S_TWO], S_FIVE, value=1.0, hard=True, node_id=7),  # same state as node 3
    ]


class RunBuilder:
    """Writes one run directory under ``path``."""

    def __init__(self, path: Path, config: dict[str, Any] | None = None) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        (path / "traces").mkdir(exist_ok=True)
        config = config if config is not None else {
            "name": "fixture-run", "mode": "label", "search": {"algorithm": "mcts"},
            "model": {"system_prompt": "Be brief."}, "tasks": None}
        (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def result(self, problem_id: str, status: str = "correct") -> RunBuilder:
        """Appends a result line."""
        with (self.path / "results.jsonl").open("a") as f:
            f.write(json.dumps({"id": problem_id, "status": status, "correct": status == "correct"}) + "\n")
        return self

    def trace(self, problem_id: str, tree: Tree, question: str = QUESTION) -> RunBuilder:
        """Writes a trace file."""
        file = self.path / "traces" / f"{safe_name(problem_id)}.json"
        file.write_text(json.dumps(trace_of(tree, problem_id, question)))
        return self

    def labels(self, problem_id: str, labels: list[StepLabel], tail: str = "") -> RunBuilder:
        """Writes a label file (``tail`` appended raw, e.g. a torn line)."""
        folder = self.path / "labels"
        folder.mkdir(exist_ok=True)
        lines = "".join(lab.model_dump_json() + "\n" for lab in labels)
        (folder / f"{safe_name(problem_id)}.jsonl").write_text(lines + tail)
        return self


def standard_run(path: Path) -> RunBuilder:
    """p1 finished with trace + labels (and a torn last label line); p2 retried after an
    error (its latest row is the error; its trace and labels are stale); p3 finished
    with a single-node-deep tree and no labels."""
    builder = RunBuilder(path)
    builder.result("p1").result("p2").result("p2", status="error").result("p3", status="incorrect")
    builder.trace("p1", main_tree()).labels("p1", main_labels(), tail='{"schema_version": 1, "probl')
    stale = main_tree()
    builder.trace("p2", stale, question="Stale?")
    builder.labels("p2", [label([], S_TWO, value=1.0, hard=True, problem_id="p2", question="Stale?")])
    p3 = Tree()
    add(p3, 0, "No idea.", terminal=True, scores={"verifier": 0.0}, visits=1, value_sum=0.0)
    builder.trace("p3", p3, question="Hard one?")
    return builder
