"""``ponder bench label``'s accounting on a scripted engine (no server), hand-checked.

Problem ``right`` (gold 42): self-consistency draws three chains (char tokens, ``\\n\\n`` steps)

    A = "Add them.\\n\\n" + "The answer is 42."                                  right
    B = "Add them.\\n\\n" + "Carry.\\n\\n" + "Check.\\n\\n" + "The answer is 41."  wrong
    C = "Add them.\\n\\n" + "The answer is 41."                                  wrong

Rollouts finish "The answer is 42." (right) c times, then "The answer is 41." (wrong):
after "Add them." c = 1; after "Carry." c = n; after "Check." c = 1 for Math-Shepherd's
n = N = 3 and 0 for OmegaPRM's n = k = 2. Problem ``hard`` (gold 7): every sample from the
root is "The answer is 5." (one step, wrong). Screening (4 from the root): A, B, C, A for
``right`` (2 of 4 right: kept), four wrong for ``hard`` (all_wrong).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from tests.ponder.ponder_fakes import CharTokenizer

from benchmarks.label import LabelBenchSettings, label_lines, label_summary, measure_labels
from ponder.config import parse_run_config
from ponder.engine import Engine
from search.protocols import ConfigError, Generation, Problem, Sampling, StepProposal, Usage
from search.scheduler import BoundedPolicy
from verifiers.math import MathVerifier
from verifiers.tasks import TaskSet

A = "Add them.\n\nThe answer is 42."
B = "Add them.\n\nCarry.\n\nCheck.\n\nThe answer is 41."
C = "Add them.\n\nThe answer is 41."
RIGHT, WRONG = "The answer is 42.", "The answer is 41."


def proposal(text: str) -> StepProposal:
    ids = tuple(ord(c) for c in text)
    return StepProposal(text, ids, (-0.1,) * len(ids), "eos", text_offsets=tuple(range(len(text))))


class ScriptPolicy:
    """The script of the module docstring; records (solution text so far, n) of each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        prompt = "".join(chr(t) for t in prefix)
        done, n = prompt.split("<assistant>", 1)[1], sampling.n
        self.requests.append((done, n))
        if done == "":
            texts = ["The answer is 5."] * n if "3 + 4" in prompt else [(A, B, C)[i % 3] for i in range(n)]
        else:
            c = {"Add them.\n\n": 1, "Carry.\n\n": n, "Check.\n\n": 1 if n == 3 else 0}[done.split("\n\n")[-2] + "\n\n"]
            texts = [RIGHT] * c + [WRONG] * (n - c)
        props = tuple(proposal(t) for t in texts)
        return Generation(props, Usage(prompt_tokens=len(prefix), generated_tokens=sum(len(t) for t in texts), calls=1))


def run(mode: str = "label"):
    policy = ScriptPolicy()
    engine = Engine(client=None, tokenizer=CharTokenizer(), policy=BoundedPolicy(policy, 8), reward_model=None,
                    system_prompt=None)
    cfg = parse_run_config({"mode": mode, "tasks": {"source": "reasoning_gym", "name": "chain_sum"},
                            "steps": {"delimiter": "\n\n", "max_depth": 6, "max_step_tokens": 96},
                            "search": {"algorithm": "self_consistency", "num_samples": 3}})
    problems = [Problem(id="right", question="What is 40 + 2?"), Problem(id="hard", question="What is 3 + 4?")]
    tasks = TaskSet(problems, {"right": "42", "hard": "7"}, MathVerifier())
    settings = LabelBenchSettings(num_rollouts=3, k=2, screen_rollouts=4, max_rollout_tokens=32, concurrency=2)
    return asyncio.run(measure_labels(cfg, tasks, engine, settings)), settings, policy


def test_costs_balance_and_agreement_by_hand():
    measured, settings, policy = run()
    s = label_summary(measured, settings)
    assert s["search"] == {"problems": 2, "errors": 0, "end_leaves": {"correct": 1, "incorrect": 5},
                           "requests": 2, "generated_tokens": 28 + 44 + 28 + 3 * 16, "wall_seconds": pytest.approx(
                               measured.search_wall_seconds)}
    ms = s["math_shepherd"]
    # right: 8 nodes (A 2, B 4, C 2) -> 6 distinct steps; hard: 3 one-step chains -> 1 distinct step.
    # Rollouts: one request per distinct inner prefix (after "Add them.", "Carry.", "Check."), n = 3.
    assert (ms["labels"], ms["steps"], ms["requests"], ms["completions"]) == (11, 7, 3, 9)
    assert ms["generated_tokens"] == 9 * 17 and ms["completions_per_step"] == pytest.approx(9 / 7)
    assert ms["tokens_per_step"] == pytest.approx(153 / 7)
    # True: "Add them." (MC 1/3), A's answer (right), "Carry." (MC 1), "Check." (MC 1/3); False: two 41s, the 5.
    assert ms["true_share"] == pytest.approx(4 / 7) and ms["mean_value"] == pytest.approx((1 / 3 + 1 + 1 + 1 / 3) / 7)
    om = s["omega_prm"]
    assert om["screened_out"] == {"all_wrong": 1} and om["binary_searches"] == 2 and om["problems_labelled"] == 1
    # B: probe "Add them.Carry." (MC 1: span [0, 2) True), then + "Check." (MC 0: [2, 3) False);
    # C: probe "Add them." (MC 1/2: [0, 1) True), then C's last step is the wrong end (False, no rollouts).
    assert (om["labels"], om["steps"], om["requests"], om["completions"]) == (4, 4, 5, 14)
    assert om["screening"] == {"requests": 2, "completions": 8, "generated_tokens": 28 + 44 + 28 + 28 + 4 * 16}
    assert om["generated_tokens"] == 192 + 6 * 17 and om["completions_per_step"] == pytest.approx(14 / 4)
    assert om["true_share"] == pytest.approx(2 / 4) and om["mean_value"] == pytest.approx((0.5 + 1.0) / 4)
    bare = om["without_screening"]
    assert (bare["requests"], bare["completions"], bare["generated_tokens"]) == (3, 6, 102)
    assert bare["completions_per_step"] == pytest.approx(6 / 4) and bare["tokens_per_step"] == pytest.approx(102 / 4)
    assert s["omega_over_ms"]["completions"] == pytest.approx(14 / 9)
    assert s["omega_over_ms_without_screening"]["completions_per_step"] == pytest.approx((6 / 4) / (9 / 7))
    # Shared single steps: "Add them." T/T, "Check." MS T / OmegaPRM F, C's "41" F/F; "Add them.Carry." is a span.
    # From rollouts on both sides: "Add them." and "Check." (C's "41" is its own verdict on both).
    assert s["agreement"] == {"shared": 3, "agree": 2, "rate": pytest.approx(2 / 3), "omega_spans": 1,
                              "omega_unmatched": 0, "sampled_shared": 2, "sampled_agree": 1,
                              "confusion": {"ms_F_omega_F": 1, "ms_T_omega_F": 1, "ms_T_omega_T": 1}}
    # each generator its own Rollouts: the prefix after "Add them." is sampled by both (n = 3, then n = 2)
    assert [r for r in policy.requests if r[0] == "Add them.\n\n"] == [("Add them.\n\n", 3), ("Add them.\n\n", 2)]
    assert s["saturated_tok_per_s"] is None and ms["tok_per_s_of_saturated"] is None
    text = "\n".join(label_lines(s))
    assert "equal problems and trees" in text and "without screening" in text and "2 of 3" in text and "1 of 2" in text


def test_needs_label_mode():
    with pytest.raises(ConfigError, match="mode"):
        run(mode="solve")
