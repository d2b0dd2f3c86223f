"""Label runs with a scripted engine: labels written per problem before the result line,
rollout cost apart from the search's, an engine fault during labelling loses nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from ponder import run
from ponder.config import parse_run_config
from ponder_fakes import fake_open_engine
from search.labels.records import StepLabel
from search.protocols import ConfigError, EngineFault, Generation, Problem, Sampling, StepProposal, Usage
from verifiers.math import MathVerifier
from verifiers.tasks import TaskSet

TWO_STEPS = "Add them.\n\nThe answer is 42."


class TwoStepPolicy:
    """Every sample: two steps ending in EOS (char tokens, offsets given); rollouts from the
    first step finish 'The answer is 42.'. Gone for good after ``gone_after`` requests."""

    def __init__(self, gone_after: int | None = None) -> None:
        self.gone_after = gone_after
        self.requests: list[Sampling] = []

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        self.requests.append(sampling)
        if self.gone_after is not None and len(self.requests) > self.gone_after:
            raise EngineFault("http://fake:1", "connection refused; restart limit reached")
        done = "".join(chr(t) for t in prefix).endswith("Add them.\n\n")
        text = "The answer is 42." if done else TWO_STEPS
        ids = tuple(ord(c) for c in text)
        prop = StepProposal(text, ids, (-0.1,) * len(ids), "eos", text_offsets=tuple(range(len(text))))
        return Generation((prop,) * sampling.n, Usage(prompt_tokens=len(prefix), generated_tokens=len(ids) * sampling.n, calls=1))


def tasks() -> TaskSet:
    problems = [Problem(id="right", question="What is 40 + 2?"), Problem(id="wrong", question="What is 3 + 4?")]
    return TaskSet(problems, {"right": "42", "wrong": "7"}, MathVerifier())


def label_cfg(tmp_path, **extra):
    return parse_run_config({
        "mode": "label", "run_dir": str(tmp_path), "tasks": {"source": "reasoning_gym", "name": "chain_sum"},
        "search": {"algorithm": "self_consistency", "num_samples": 2},
        "labels": [{"generator": "rest_value"}, {"generator": "math_shepherd", "num_rollouts": 3}], **extra})


def read_labels(path) -> list[StepLabel]:
    return [StepLabel.model_validate_json(line) for line in path.read_text().splitlines()]


def test_labels_need_label_mode():
    with pytest.raises(ConfigError, match="label"):
        parse_run_config({"labels": [{"generator": "rest_value"}]})
    assert [g.generator for g in parse_run_config({"mode": "label"}).label_generators] == ["rest_value", "rest_prm"]


def test_label_run_writes_labels_with_provenance(tmp_path, monkeypatch):
    policy = TwoStepPolicy()
    monkeypatch.setattr(run, "open_engine", fake_open_engine(policy))
    outcome = asyncio.run(run.run_config(label_cfg(tmp_path), tasks=tasks()))
    rows = {r["id"]: r for r in outcome.rows}
    right = read_labels(tmp_path / "labels" / "right.jsonl")
    wrong = read_labels(tmp_path / "labels" / "wrong.jsonl")
    assert rows["right"]["labels"] == len(right) and rows["wrong"]["labels"] == len(wrong)
    # rest_value: both chains are correct -> the two steps of each chain get values
    rest = [x for x in right if x.generator == "rest_value"]
    assert {x.step for x in rest} == {"Add them.\n\n", "The answer is 42."} and all(x.label for x in rest)
    assert not [x for x in wrong if x.generator == "rest_value"]  # nothing correct: no targets
    # math_shepherd: the first step gets 3 rollouts (sampled once: both chains share the prefix)
    first = [x for x in right if x.generator == "math_shepherd" and x.depth == 1]
    assert first and all(x.rollouts == 3 and x.correct == 3 and x.value == 1.0 for x in first)
    first_wrong = [x for x in wrong if x.generator == "math_shepherd" and x.depth == 1]
    assert first_wrong and all(x.label is False and x.correct == 0 for x in first_wrong)
    x = first[0]
    assert (x.problem_id, x.question, x.prefix, x.model, x.mode) == ("right", "What is 40 + 2?", [], "unknown", "per_step")
    rollout_requests = [s for s in policy.requests if s.n == 3]
    assert len(rollout_requests) == 2  # one per problem: the identical prefix is never resampled
    assert rows["right"]["label_usage"]["calls"] == 1 and rows["right"]["usage"]["calls"] == 1
    summary = run.summarize(outcome.rows, 1.0)
    assert summary["labels"] == len(right) + len(wrong) and summary["label_rollout_calls"] == 2
    trace = json.loads((tmp_path / "traces" / "right.json").read_text())
    assert any(n["scores"].get("verifier") == 1.0 for n in trace["nodes"])  # end leaves verified


def test_engine_fault_while_labelling_leaves_the_problem_unfinished(tmp_path, monkeypatch):
    cfg = label_cfg(tmp_path, max_concurrent_problems=1)
    monkeypatch.setattr(run, "open_engine", fake_open_engine(TwoStepPolicy(gone_after=1)))
    with pytest.raises(EngineFault):
        asyncio.run(run.run_config(cfg, tasks=tasks()))
    assert not (tmp_path / "results.jsonl").exists() or not (tmp_path / "results.jsonl").read_text().strip()
    assert not (tmp_path / "labels" / "right.jsonl").exists()
    monkeypatch.setattr(run, "open_engine", fake_open_engine(TwoStepPolicy()))
    outcome = asyncio.run(run.run_config(cfg, tasks=tasks()))
    assert {r["id"] for r in outcome.rows} == {"right", "wrong"} and outcome.skipped == 0
    assert read_labels(tmp_path / "labels" / "right.jsonl")


def test_a_label_runs_datasets_are_written_once_per_generator_and_sft_once(tmp_path, monkeypatch):
    cfg = label_cfg(tmp_path, export=["prm", "sft"])
    monkeypatch.setattr(run, "open_engine", fake_open_engine(TwoStepPolicy()))
    asyncio.run(run.run_config(cfg, tasks=tasks()))
    written = run.export_labelled(cfg, tasks())
    assert sorted(p.name for p in written) == ["prm_math_shepherd", "prm_rest_value", "sft"]
    assert all(p.parent == tmp_path / "datasets" and (p / "README.md").exists() for p in written)
