"""TreePO segment-tree sampling against a scripted segment policy (spec 03 §2-§5, §8-§9)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Sequence

import pytest
from search_fakes import SEP, answer_of, chat_prompt, decode, encode

from search.algorithms import parse_algorithm_config, run_search
from search.algorithms.treepo import TreePOConfig, trajectories
from search.context import Budget, SamplingDefaults, SearchContext
from search.protocols import ConfigError, Generation, Problem, Sampling, StepProposal, Usage
from search.scheduler import BoundedPolicy, solve_all
from search.segments import (
    box_state,
    branch_total,
    classify_segment,
    cut_segments,
    distribute,
    fallback_order,
    is_repetitive,
    path_scores,
)
from search.steps import StepFormat
from training.rl.advantages import tree_advantages

L = 8  # segment length in (character) tokens


class SegmentPolicy:
    """Continues the response with the next ``max_tokens`` characters of a scripted solution.

    The solutions consistent with the response so far give the distinct next segments; sample
    i of the j-th request for a prefix takes segment ``(j * n + i) % len(next)``. A sample ends
    with EOS where its solution ends, else at the token limit (``length``). Records requests.
    """

    def __init__(self, solutions: Sequence[str], latency: float = 0.0) -> None:
        self.solutions = list(solutions)
        self.latency = latency
        self.requests: list[tuple[list[int], Sampling]] = []
        self._seen: dict[tuple[int, ...], int] = defaultdict(int)
        self.in_flight = self.peak_in_flight = 0

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        self.requests.append((list(prefix), sampling))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        await asyncio.sleep(self.latency)
        self.in_flight -= 1
        response = decode(prefix[list(prefix).index(SEP) + 1 :])
        nexts = list(dict.fromkeys(s[len(response) : len(response) + sampling.max_tokens]
                                   for s in self.solutions if s.startswith(response) and len(s) > len(response)))
        j = self._seen[tuple(prefix)]
        self._seen[tuple(prefix)] += 1
        proposals = []
        for i in range(sampling.n):
            text = nexts[(j * sampling.n + i) % len(nexts)]
            eos = any(s == response + text for s in self.solutions)
            proposals.append(StepProposal(text, tuple(encode(text)), (-0.1,) * len(text), "eos" if eos else "length"))
        generated = sum(len(p.token_ids) for p in proposals)
        return Generation(tuple(proposals), Usage(prompt_tokens=len(prefix), generated_tokens=generated, calls=1))


def make_ctx(policy, *, problem_id: str = "p0", max_depth: int = 6, budget: Budget | None = None,
             seed: int | None = 0) -> SearchContext:
    return SearchContext(
        policy=policy, root_prefix=chat_prompt("q"), problem=Problem(problem_id, "q"),
        steps=StepFormat(fixed_tokens=L, max_depth=max_depth), extract_fn=answer_of,
        budget=budget or Budget(), sampling=SamplingDefaults(temperature=1.0, seed=seed),
    )


def seg(name: str) -> str:
    return f"{name:<{L}}"[:L]


# Three segments each: two first segments, two second segments under each, then answers.
FULL = [seg(f"a{a}") + seg(f"b{a}{b}") + f"ANSWER:{k}" for a in range(2) for b in range(2) for k in "12"]


def run(ctx, config):
    return asyncio.run(run_search(ctx, config))


def test_full_binary_tree_shape_counts_and_paths():
    # spec 03 §2/§4 by_fixed_div, D = 2, first divergence 2: 2 -> 4 -> 8 paths, all finish at level 3.
    policy = SegmentPolicy(FULL)
    ctx = make_ctx(policy)
    result = run(ctx, TreePOConfig(max_width=8, divergence=2))
    trajs = trajectories(result)
    depth_counts = [sum(1 for n in ctx.tree.nodes if n.depth == d) for d in range(4)]
    assert depth_counts == [1, 2, 4, 8]
    assert len(trajs) == 8 and {t.finish_reason for t in trajs} == {"finished"}
    assert [len(r[0]) - len(ctx.root_prefix) for r in policy.requests] == [0, 8, 8, 16, 16, 16, 16]
    assert [r[1].n for r in policy.requests] == [2, 2, 2, 2, 2, 2, 2]
    assert all(r[1].max_tokens == L for r in policy.requests)
    assert result.usage.generated_tokens == (2 + 4) * L + 8 * len("ANSWER:1")  # 14 segments, not 24
    for t in trajs:  # a trajectory is its segments, concatenated, prompt excluded
        assert len(t.path) == 3 and t.text in FULL and t.token_ids == encode(t.text)
        assert t.answer == answer_of(t.text)
    # siblings share their prefix ids: 2 subtrees of 4 under the first segments
    assert sorted(Counter(t.path[0] for t in trajs).values()) == [4, 4]
    assert result.extra["fallback_counter"] == 0 and result.extra["num_trajectories"] == 8
    assert result.answer is not None and result.answer in {t.answer for t in trajs}


def test_clone_requests_send_one_request_per_segment():
    # spec 03 §2: the release clones samples: one n = 1 request per segment.
    policy = SegmentPolicy(FULL)
    run(make_ctx(policy), TreePOConfig(max_width=8, clone_requests=True))
    assert len(policy.requests) == 14 and {r[1].n for r in policy.requests} == {1}


def test_finished_paths_donate_their_branching():
    # spec 03 §4: level 1: one path ends (f = 1), one goes on (A = 1): min(8 - 1, 1·2 + 2·1) = 4.
    sols = ["ANSWER:1", *[seg("long") + seg(f"x{i}") + "ANSWER:2" for i in range(4)]]
    policy = SegmentPolicy(sols)
    ctx = make_ctx(policy)
    result = run(ctx, TreePOConfig(max_width=8))
    assert [r[1].n for r in policy.requests][:2] == [2, 4]
    assert result.extra["num_trajectories"] <= 8


def test_fallback_refills_the_width_from_cut_prefixes():
    # spec 03 §5: every path ends after one segment -> no active path, F = 2 < W = 6: fallback
    # from finished ones; a one-segment trajectory is cut back to the prompt.
    policy = SegmentPolicy(["ANSWER:1", "ANSWER:2", "ANSWER:3"])
    ctx = make_ctx(policy)
    result = run(ctx, TreePOConfig(max_width=6))
    assert [r[1].n for r in policy.requests] == [2, 4]
    assert result.extra["fallback_counter"] == 1
    assert result.extra["n_finished_traj_at_first_fallback"] == 2
    assert len(trajectories(result)) == 6


def test_fallback_restarts_under_a_kept_prefix():
    # spec 03 §5: with D = 1 the first trajectory is a chain; fallbacks cut it at random
    # (keep 0, 1 or 2 of its 3 segments) and hang the new branches under the kept prefix.
    sols = [seg("a") + seg(f"b{i}") + "ANSWER:1" for i in range(3)]
    policy = SegmentPolicy(sols)
    ctx = make_ctx(policy, seed=3)
    result = run(ctx, TreePOConfig(max_width=12, divergence=1, first_divergence=1))
    trajs = trajectories(result)
    first = trajs[0].path
    assert result.extra["fallback_counter"] >= 1 and result.extra["n_finished_traj_at_first_fallback"] == 1
    assert len(trajs) == 12 and all(len(t.path) == 3 for t in trajs)
    reused = [t for t in trajs[1:] if t.path[0] == first[0]]
    assert reused, "no fallback kept a prefix"
    # every fallback prompt is the kept prefix's token ids (the prefix cache's hits)
    kept = {tuple(r[0]) for r in policy.requests}
    assert tuple(ctx.tree.path_token_ids(first[0])) in kept
    # the fallbacks' paths share ids with the old ones, so tree advantages see the subgroups
    advantages = tree_advantages([float(i == 0) for i in range(12)], [t.path for t in trajs])
    assert advantages[0] > 0 > advantages[1]


def test_termination_reasons_recorded():
    # spec 03 §3: EOS without answer, the response limit, the depth limit, repetition.
    noanswer = ["no answer"]
    ctx = make_ctx(SegmentPolicy(noanswer))
    assert {t.finish_reason for t in trajectories(run(ctx, TreePOConfig(max_width=2)))} == {"early_stopped_by_eos"}
    endless = [seg(f"s{i}") * 1 + seg("t") * 10 for i in range(2)]
    ctx = make_ctx(SegmentPolicy(endless), max_depth=3)
    res = run(ctx, TreePOConfig(max_width=2, repetition_policy="off"))
    assert {t.finish_reason for t in trajectories(res)} == {"finished_with_max_infer_steps"}
    ctx = make_ctx(SegmentPolicy(endless), max_depth=6)
    res = run(ctx, TreePOConfig(max_width=2, max_response_tokens=2 * L, repetition_policy="off"))
    assert {t.finish_reason for t in trajectories(res)} == {"finished_with_max_output_tokens"}
    assert all(len(t.token_ids) == 2 * L for t in trajectories(res))
    ctx = make_ctx(SegmentPolicy(endless), max_depth=6)
    res = run(ctx, TreePOConfig(max_width=2, repetition_substring_chars=4, repetition_min_count=3))
    assert {t.finish_reason for t in trajectories(res)} == {"early_stopped_by_repetition"}
    assert all(ctx.tree.nodes[t.path[-1]].end for t in trajectories(res))


def test_budget_exhaustion_leaves_unfinished_trajectories():
    ctx = make_ctx(SegmentPolicy(FULL), budget=Budget(max_calls=3))
    res = run(ctx, TreePOConfig(max_width=8))
    reasons = [t.finish_reason for t in trajectories(res)]
    assert reasons == ["unfinished"] * 4 and res.extra["budget_exhausted"]


def test_probability_driven_distribution_gives_uncertain_paths_more():
    # spec 03 §4 logprob_weighted_div: more branches to the LOW-probability path.
    class Skewed(SegmentPolicy):
        async def propose(self, prefix, sampling):
            gen = await super().propose(prefix, sampling)
            props = tuple(StepProposal(p.text, p.token_ids, ((-2.0 if p.text.startswith("a1") else -0.1),) * len(p.text),
                                       p.finish_reason) for p in gen.proposals)
            return Generation(props, gen.usage)

    policy = Skewed(FULL)
    ctx = make_ctx(policy)
    run(ctx, TreePOConfig(max_width=8, divergence_policy="logprob_weighted_div", div_temperature=2.0))
    level2 = {decode(r[0][len(ctx.root_prefix):]): r[1].n for r in policy.requests[1:3]}
    assert level2[seg("a1")] > level2[seg("a0")]


def test_prompts_run_concurrently_against_one_bounded_policy():
    # spec 03 §2: every active path of every prompt is in flight together (one coroutine each).
    policy = SegmentPolicy(FULL, latency=0.02)
    bounded = BoundedPolicy(policy, 64)
    problems = [Problem(f"p{i}", "q") for i in range(3)]
    outs = asyncio.run(solve_all(problems, lambda p: make_ctx(bounded, problem_id=p.id),
                                 TreePOConfig(max_width=8, clone_requests=True), 3))
    assert all(len(trajectories(o)) == 8 for o in outs)
    assert policy.peak_in_flight == 3 * 8


def test_config_validation_and_registration():
    cfg = parse_algorithm_config({"algorithm": "treepo", "max_width": 16})
    assert isinstance(cfg, TreePOConfig) and cfg.divergence == 2 and cfg.first_divergence is None
    with pytest.raises(ConfigError, match="max_width"):
        parse_algorithm_config({"algorithm": "treepo", "max_width": 0})
    with pytest.raises(ConfigError, match="step_token_budget"):
        parse_algorithm_config({"algorithm": "treepo", "budget_policy": "by_infer_step_token_budget"})
    with pytest.raises(ConfigError, match="divergence_policy"):
        parse_algorithm_config({"algorithm": "treepo", "divergence_policy": "softmax"})


# -- pure pieces ----------------------------------------------------------------------------


def test_branch_total_policies():
    rng = random.Random(0)
    kw = dict(segment_tokens=64, rng=rng)
    # spec 03 §4 by_fixed_div: min(W - F, f·D + D·A), at least A
    assert branch_total("by_fixed_div", width=16, finished=3, finished_now=1, active=3, divergence=2, **kw) == 8
    assert branch_total("by_fixed_div", width=16, finished=10, finished_now=2, active=5, divergence=2, **kw) == 6
    assert branch_total("by_fixed_div", width=8, finished=8, finished_now=0, active=0, divergence=2, **kw) == 0
    draws = {branch_total("by_random_div", width=99, finished=0, finished_now=0, active=1, divergence=2,
                          random_div=(1, 3), **kw) for _ in range(50)}
    assert draws == {1, 2, 3}
    # by_infer_step_token_budget: 256 tokens / 64 per segment = 4 paths, at least A
    assert branch_total("by_infer_step_token_budget", width=16, finished=0, finished_now=0, active=2, divergence=2,
                        step_token_budget=256, **kw) == 4
    assert branch_total("by_infer_step_token_budget", width=16, finished=0, finished_now=0, active=6, divergence=2,
                        step_token_budget=256, **kw) == 6


def test_distribute_fixed_avg_and_weighted():
    # spec 03 §4 fixed_avg: floor(total/A) each, the last gets the remainder
    assert distribute(7, 3) == [2, 2, 3]
    assert distribute(2, 3) == [1, 1, 1]
    # weights softmax([0, 0, ln 2]) = [1/4, 1/4, 1/2]; 1 each + 5 by largest remainder of
    # [1.25, 1.25, 2.5] -> [2, 2, 3] + the one left to the largest remainder (0.5) -> [2, 2, 4]
    import math

    assert distribute(8, 3, [0.0, 0.0, math.log(2)]) == [2, 2, 4]
    # path scores: logprob_weighted_div favours the least likely path, inverse the most likely
    assert path_scores("logprob_weighted_div", [-1.0, -3.0, -2.0], [0, 0, 0], [0, 0, 0]) == [-2.0, 0.0, -1.0]
    assert path_scores("inverse_logprob_weighted_div", [-1.0, -3.0, -2.0], [0, 0, 0], [0, 0, 0]) == [2.0, 0.0, 1.0]
    assert path_scores("node_logprob_weighted_div", [0, 0], [0, 0], [-0.5, -0.1]) == pytest.approx([0.0, -0.4])
    assert path_scores("fixed_avg", [0], [0], [0]) is None


def test_termination_order():
    # spec 03 §3: the checks in order; each case differs from the next only in one check.
    base = dict(eos=False, answered=False, box="none", repetitive=False, response_tokens=10, depth=1,
                max_response_tokens=100, max_depth=5)
    assert classify_segment(**base) is None
    assert classify_segment(**{**base, "repetitive": True, "eos": True, "answered": True}) == "early_stopped_by_repetition"
    assert classify_segment(**{**base, "repetitive": True, "eos": True, "answered": True},
                            repetition_policy="last") == "finished"
    assert classify_segment(**{**base, "eos": True, "answered": True, "response_tokens": 100, "depth": 5}) == "finished"
    assert classify_segment(**{**base, "eos": True, "box": "open", "answered": True}) == "finished_with_unclosed_answer"
    assert classify_segment(**{**base, "eos": True, "response_tokens": 100}) == "early_stopped_by_eos"
    assert classify_segment(**{**base, "response_tokens": 100, "depth": 5}) == "finished_with_max_output_tokens"
    assert classify_segment(**{**base, "depth": 5, "repetitive": True},
                            repetition_policy="last") == "finished_with_max_infer_steps"
    assert classify_segment(**{**base, "repetitive": True}, repetition_policy="last") == "early_stopped_by_repetition"
    assert classify_segment(**{**base, "repetitive": True}, repetition_policy="off") is None
    assert classify_segment(**{**base, "box": "closed"}) is None
    assert classify_segment(**{**base, "box": "closed"}, boxed_eos_policy="boxed_as_eos") == "finished"


def test_repetition_and_box_detectors():
    assert is_repetitive("abcd" * 80) and not is_repetitive("x" * 255)
    assert is_repetitive("".join(chr(65 + i % 50) for i in range(400)))  # period 50: 8 repeats
    assert not is_repetitive("".join(chr(65 + i % 50) for i in range(380)))  # 7 repeats
    assert box_state("so \\boxed{1{2}}") == "closed" and box_state("\\boxed{1{2}") == "open"
    assert box_state("no box") == "none"


def test_fallback_choices():
    rng = random.Random(1)
    reasons = ["early_stopped_by_repetition", "finished", "early_stopped_by_eos", "finished_with_max_output_tokens"]
    # spec 03 §5 soft_boxed_and_eos: only answered or EOS-ended trajectories
    assert sorted(fallback_order("soft_boxed_and_eos", reasons, [1, 2, 3, 4], rng)) == [1, 2]
    assert fallback_order("finished_first_strict", reasons, [1, 2, 3, 4], rng)[:2] == [1, 2]
    assert sorted(fallback_order("random_all", reasons, [1, 2, 3, 4], rng)) == [0, 1, 2, 3]
    # cut points: random keeps n - b with b in [1, n] (b <= window), at most max_depth - 1
    keeps = {cut_segments("random", [-0.1] * 4, rng, max_depth=10) for _ in range(100)}
    assert keeps == {0, 1, 2, 3}
    assert {cut_segments("random", [-0.1] * 4, rng, max_depth=10, max_fallback_window=1) for _ in range(20)} == {3}
    assert cut_segments("min_logprob_segment", [-0.1, -0.9, -0.2], rng, max_depth=10) == 1
    assert cut_segments("min_logprob_segment", [-0.1, -0.2, -0.9], rng, max_depth=2) == 1
    assert cut_segments("from_start", [-0.1, -0.2], rng, max_depth=10) == 0
    drawn = [cut_segments("block", [-0.01, -5.0], rng, max_depth=10) for _ in range(50)]
    assert drawn.count(1) > 40  # the uncertain segment is drawn far more often
