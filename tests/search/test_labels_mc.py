"""Monte-Carlo label generators: Math-Shepherd (spec 08 §2) and OmegaPRM (spec 08 §3), over
a scripted completer whose success rate is planted per prefix, and the shared prefix-cached
``Rollouts``. Every expected number is worked out in the comments."""

from __future__ import annotations

import asyncio
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence

import pytest
from search_fakes import answer_of, chat_prompt, decode, encode, make_ctx

from search.context import SearchContext
from search.labels.inputs import LabelInputs, verify_end_leaves
from search.labels.math_shepherd import MathShepherdConfig, math_shepherd_labels
from search.labels.omega_prm import OmegaPrmConfig, omega_prm_labels, selection_score
from search.labels.rollouts import LabelStats, Rollouts
from search.protocols import (
    ConfigError,
    EngineFault,
    Generation,
    ModelServerError,
    Sampling,
    StepProposal,
    Usage,
    Verdict,
    VerdictStatus,
)
from search.steps import StepFormat

QUESTION = "What is 2+2?"
ROOT = chat_prompt(QUESTION)
MODEL = "policy-x"
RIGHT = "r\n\nANSWER:4"

Steps = tuple[str, ...]


def wrong_text(g: int) -> str:
    """The g-th wrong completion: a fine step, then a planted bad one, then a wrong answer."""
    return f"ok{g}\n\nbad\n\nANSWER:5"


def planted(steps: Steps, good: int = 4) -> int:
    """Successes out of 8: 0 once a step contains "bad", else ``good``."""
    return 0 if any("bad" in s for s in steps) else good


class Completer:
    """A scripted policy of whole completions. ``success(steps)`` = c in 0..8: the g-th sample
    ever drawn for a prefix (over all its requests) is ``RIGHT`` iff g % 8 < c, else
    ``wrong_text(g)``; so any 8 consecutive samples hold exactly c right ones."""

    def __init__(
        self,
        success: Callable[[Steps], int] = planted,
        *,
        fail_on: Callable[[Steps], bool] = lambda steps: False,
        fault: Exception | None = None,
    ) -> None:
        self.success, self.fail_on, self.fault = success, fail_on, fault
        self.requests: list[tuple[Steps, Sampling]] = []
        self._drawn: dict[tuple[int, ...], int] = defaultdict(int)

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        assert list(prefix[: len(ROOT)]) == ROOT
        steps = tuple(re.findall(r".*?\n\n|.+$", decode(prefix[len(ROOT):]), flags=re.DOTALL))
        self.requests.append((steps, sampling))
        await asyncio.sleep(0)
        if self.fail_on(steps):
            raise self.fault or ModelServerError("fake", "context overflow", retryable=False)
        c, start = self.success(steps), self._drawn[tuple(prefix)]
        self._drawn[tuple(prefix)] += sampling.n
        texts = [RIGHT if g % 8 < c else wrong_text(g) for g in range(start, start + sampling.n)]
        proposals = tuple(
            StepProposal(t, tuple(encode(t)), (-0.1,) * len(t), "eos", text_offsets=tuple(range(len(t)))) for t in texts
        )
        return Generation(proposals, Usage(prompt_tokens=len(prefix), generated_tokens=sum(map(len, texts)), calls=1))


async def oracle(text: str) -> Verdict:
    """Gold answer 4; no ANSWER: is unparseable."""
    found = answer_of(text)
    if found is None:
        return Verdict(VerdictStatus.UNPARSEABLE)
    return Verdict(VerdictStatus.CORRECT if found == "4" else VerdictStatus.INCORRECT, found)


def context(policy: Completer, **kwargs) -> SearchContext:
    return make_ctx(None, question=QUESTION, problem_id="p3", oracle=oracle, policy=policy, **kwargs)


def add_path(ctx: SearchContext, parent: int, texts: Sequence[str], *, end: bool = False) -> list[int]:
    """Appends a chain of steps; the last is terminal (EOS) unless ``end`` (closed by an end gate)."""
    ids = []
    for i, text in enumerate(texts):
        last = i == len(texts) - 1
        proposal = StepProposal(text, tuple(encode(text)), (), "eos" if last and not end else "stop")
        node = ctx.tree.add_child(parent, proposal, terminal=last and not end)
        node.end = last and end
        parent = node.id
        ids.append(parent)
    return ids


async def inputs_for(ctx: SearchContext) -> LabelInputs:
    return LabelInputs(ctx=ctx, model=MODEL, verdicts=await verify_end_leaves(ctx))


# ---------------------------------------------------------------- Math-Shepherd


def shepherd_success(steps: Steps) -> int:
    return {(): 4, ("s1\n\n",): 1, ("s1\n\n", "s2\n\n"): 8}.get(steps, 0)


async def test_math_shepherd_hard_and_soft_labels():
    """spec 08 §2: N = 8 completions per inner step, HE = 1[MC > 0], SE = MC; a final step is
    labelled by its own verdict; a node on several paths is labelled once.

    0 ── 1 s1 ─┬─ 2 s2 ── 3 ANSWER:4 (terminal, correct)   MC(1) = 1/8, MC(2) = 8/8
               ├─ 4 bad ── 5 ANSWER:5 (terminal, wrong)    MC(4) = 0/8
               └─ 6 s3 (end gate; no answer: unparseable)
    """
    policy = Completer(shepherd_success)
    ctx = context(policy)
    add_path(ctx, 0, ["s1\n\n", "s2\n\n", "ANSWER:4"])
    add_path(ctx, 1, ["bad\n\n", "ANSWER:5"])
    add_path(ctx, 1, ["s3\n\n"], end=True)
    inputs, stats = await inputs_for(ctx), LabelStats()
    labels = await math_shepherd_labels(inputs, MathShepherdConfig(), stats=stats)

    got = {lab.node_id: (lab.label, lab.value, lab.rollouts, lab.correct) for lab in labels}
    assert got == {
        1: (True, 0.125, 8, 1),  # HE is optimistic: one success in eight is enough
        2: (True, 1.0, 8, 8),
        3: (True, 1.0, 0, 0),  # final: its own verdict, no sampling
        4: (False, 0.0, 8, 0),
        5: (False, 0.0, 0, 0),
        6: (False, 0.0, 0, 0),
    }
    by = {lab.node_id: lab for lab in labels}
    assert by[3].verdicts == ["correct"] and by[5].verdicts == ["incorrect"] and by[6].verdicts == ["unparseable"]
    assert by[1].verdicts == ["correct"] + ["incorrect"] * 7
    four = by[4]
    assert (four.problem_id, four.question, four.model, four.mode, four.generator) == (
        "p3", QUESTION, MODEL, "per_step", "math_shepherd")
    assert (four.prefix, four.step, four.step_tokens, four.depth) == (["s1\n\n"], "bad\n\n", 5, 2)
    # one request per inner node (1, 2, 4): node 1 is shared by three paths but sampled once
    assert sorted(steps for steps, _ in policy.requests) == [("s1\n\n",), ("s1\n\n", "bad\n\n"), ("s1\n\n", "s2\n\n")]
    for steps, sampling in policy.requests:
        assert sampling.n == 8 and sampling.stop == ()
        assert sampling.max_tokens == (6 - len(steps)) * 256  # (max_depth - depth) x step tokens
    assert inputs.rollouts is not None and inputs.rollouts.usage.calls == 3 and ctx.usage.calls == 0
    assert stats.skipped == 0 and stats.estimates == 3


async def test_math_shepherd_skips_a_node_level_failure():
    """A rollout request that fails at its node (non-retryable) skips that label only."""
    policy = Completer(shepherd_success, fail_on=lambda steps: steps == ("s1\n\n", "bad\n\n"))
    ctx = context(policy)
    add_path(ctx, 0, ["s1\n\n", "s2\n\n", "ANSWER:4"])
    add_path(ctx, 1, ["bad\n\n", "ANSWER:5"])
    stats = LabelStats()
    labels = await math_shepherd_labels(await inputs_for(ctx), MathShepherdConfig(), stats=stats)
    assert sorted(lab.node_id for lab in labels) == [1, 2, 3, 5]
    assert stats.skipped == 1 and "context overflow" in stats.errors[0]


async def test_engine_fault_propagates_untouched():
    """An EngineFault is never a label: both generators let the same exception through."""
    fault = EngineFault("http://fake", "gone")
    for generate, config in [(math_shepherd_labels, MathShepherdConfig()), (omega_prm_labels, OmegaPrmConfig())]:
        ctx = context(Completer(fail_on=lambda steps: len(steps) >= 1, fault=fault))
        add_path(ctx, 0, ["s1\n\n", "bad\n\n", "s3\n\n", "ANSWER:5"])
        with pytest.raises(EngineFault) as caught:
            await generate(await inputs_for(ctx), config)
        assert caught.value is fault


async def test_no_oracle_is_a_config_error():
    ctx = make_ctx(None, policy=Completer())
    with pytest.raises(ConfigError, match="oracle"):
        Rollouts(ctx)
    with pytest.raises(ConfigError, match="oracle"):
        await math_shepherd_labels(LabelInputs(ctx=ctx, model=MODEL, verdicts={}), MathShepherdConfig())


# ---------------------------------------------------------------- Rollouts cache


async def test_prefix_cache_never_resamples_an_identical_prefix():
    policy = Completer()
    rollouts = Rollouts(context(policy, seed=3))
    p, q = [*ROOT, *encode("s1\n\n")], [*ROOT, *encode("s2\n\n")]
    first = await rollouts.estimate(p, "s1\n\n", 8, depth=1)
    again = await rollouts.estimate(p, "s1\n\n", 8, depth=1)
    assert len(policy.requests) == 1 and again == first and (first.n, first.correct, first.mc) == (8, 4, 0.5)
    fewer = await rollouts.estimate(p, "s1\n\n", 3, depth=1)  # the first 3 cached samples
    assert len(policy.requests) == 1 and fewer.verdicts == first.verdicts[:3]
    more = await rollouts.estimate(p, "s1\n\n", 12, depth=1)  # 8 cached: only 4 more
    assert [s.n for _, s in policy.requests] == [8, 4] and more.n == 12 and more.completions[:8] == first.completions
    assert policy.requests[0][1].seed != policy.requests[1][1].seed  # a top-up is a new draw
    # concurrent asks share one in-flight request; the larger ask then tops up once
    a, b, c = await asyncio.gather(*(rollouts.estimate(q, "s2\n\n", k, depth=1) for k in (8, 8, 16)))
    assert [s.n for steps, s in policy.requests if steps == ("s2\n\n",)] == [8, 8]
    assert a == b and c.n == 16 and c.completions[:8] == a.completions
    assert rollouts.usage.calls == 4 and rollouts.cached(q) == 16


async def test_waiters_on_a_faulted_request_get_the_same_engine_fault():
    fault = EngineFault("http://fake", "gone")
    policy = Completer(fail_on=lambda steps: True, fault=fault)
    rollouts = Rollouts(context(policy))
    results = await asyncio.gather(*(rollouts.estimate(ROOT, "", 8) for _ in range(3)), return_exceptions=True)
    assert results == [fault] * 3 and len(policy.requests) == 1

async def test_failed_prefix_is_cached_and_reported():
    policy = Completer(fail_on=lambda steps: True)
    rollouts = Rollouts(context(policy))
    est = await rollouts.estimate(ROOT, "", 8)
    again = await rollouts.estimate(ROOT, "", 8)
    assert est.n == 0 and est.error is not None and "ModelServerError" in est.error and again == est
    assert len(policy.requests) == 1


async def test_generators_share_the_cache():
    """Math-Shepherd then OmegaPRM on one problem: a prefix both estimate is sampled once."""
    policy = Completer()
    ctx = context(policy)
    add_path(ctx, 0, ["s1\n\n", "s2\n\n", "bad\n\n", "s4\n\n", "ANSWER:5"])
    inputs = await inputs_for(ctx)
    await math_shepherd_labels(inputs, MathShepherdConfig())
    before = len(policy.requests)
    labels = await omega_prm_labels(inputs, OmegaPrmConfig())
    assert [steps for steps, _ in policy.requests[before:]] == [()]  # only the root's screening is new
    assert labels and len({steps for steps, _ in policy.requests}) == len(policy.requests)


# ---------------------------------------------------------------- OmegaPRM


def solution(k: int, j: int) -> list[str]:
    """K steps, the first error planted at step j (1-based): "bad" at j < K, else the wrong answer."""
    return [("bad" if i == j else "s") + f"{i}\n\n" for i in range(1, k)] + ["ANSWER:5"]


CASES = [(k, j) for k in (1, 2, 3, 5, 8, 13, 16) for j in range(1, k + 1)]


@pytest.mark.parametrize(("num_steps", "first_error"), CASES)
async def test_binary_search_finds_planted_first_error(num_steps: int, first_error: int):
    """spec 08 §3.2: the first error of a K-step wrong solution is found with at most
    ceil(log2 K) probes of k = 8 (each prefix before step j succeeds 4/8, after it 0/8)."""
    policy = Completer()
    ctx = context(policy, steps=StepFormat(max_depth=20))
    texts = solution(num_steps, first_error)
    ids = add_path(ctx, 0, texts)
    stats = LabelStats()
    labels = await omega_prm_labels(await inputs_for(ctx), OmegaPrmConfig(), stats=stats)

    probes = policy.requests[1:]
    assert policy.requests[0] == ((), policy.requests[0][1]) and policy.requests[0][1].n == 32  # screening
    assert len(probes) <= math.ceil(math.log2(num_steps)) and stats.estimates == 1 + len(probes)
    assert all(s.n == 8 for _, s in probes)
    negative = [lab for lab in labels if not lab.label]
    assert len(negative) == 1
    error = negative[0]
    assert (error.node_id, error.step, error.depth, error.value) == (ids[first_error - 1], texts[first_error - 1],
                                                                     first_error, 0.0)
    assert error.prefix == texts[: first_error - 1] and error.extra["span"] == [first_error - 1, first_error]
    for lab in labels:
        assert lab.mode == "binary_search" and lab.convention == "after_first_error=drop"
        if lab.label:  # a probed positive prefix: the span from the previous low to it, value MC = 4/8
            start, end = lab.extra["span"]
            assert end < first_error and lab.value == 0.5 and (lab.rollouts, lab.correct) == (8, 4)
            assert lab.step == "".join(texts[start:end]) and lab.node_id == ids[end - 1] and lab.depth == start + 1


@pytest.mark.parametrize(("num_steps", "first_error"), [(13, 5), (16, 1), (8, 8)])
async def test_speculative_probes_keep_the_labels_and_run_only_when_the_engine_is_under_filled(
        num_steps: int, first_error: int):
    """adaptive_parallel: the bisection's two possible next probes start with the current one
    while the engine has room; the labels are the same as without (seeded: the same samples)."""
    from search.scheduler import BoundedPolicy

    found = {}
    for name, target, adaptive in (("plain", 64, False), ("speculative", 64, True), ("full", 8, True)):
        policy = Completer()
        ctx = context(BoundedPolicy(policy, 64, target_in_flight=target), steps=StepFormat(max_depth=20), seed=3)
        add_path(ctx, 0, solution(num_steps, first_error))
        stats = LabelStats()
        labels = await omega_prm_labels(await inputs_for(ctx), OmegaPrmConfig(adaptive_parallel=adaptive),
                                        stats=stats)
        found[name] = ([(lab.node_id, lab.label, lab.value, lab.rollouts, lab.correct) for lab in labels],
                       stats.speculative, len(policy.requests))
        assert ctx.occupancy.load == 0
    assert found["speculative"][0] == found["plain"][0] == found["full"][0]
    assert found["plain"][1] == 0 and found["full"][1] == 0  # off, or no room (8 = one probe of k = 8)
    if num_steps > 3:
        assert found["speculative"][1] > 0 and found["speculative"][2] >= found["plain"][2]


async def test_after_first_error_zero_labels_every_later_step():
    """spec 08 §4: with after_first_error = zero, steps after the first error are False, value 0."""
    policy = Completer()
    ctx = context(policy)
    texts = solution(6, 3)  # s1 s2 bad3 s4 s5 ANSWER:5
    ids = add_path(ctx, 0, texts)
    labels = await omega_prm_labels(await inputs_for(ctx), OmegaPrmConfig(after_first_error="zero"))
    negative = {lab.node_id: lab for lab in labels if not lab.label}
    assert sorted(negative) == ids[2:]  # bad3 (the first error) and the three steps after it
    assert [negative[i].step for i in ids[3:]] == texts[3:] and all(negative[i].rollouts == 0 for i in ids[3:])
    assert negative[ids[-1]].verdicts == ["incorrect"] and negative[ids[-1]].extra["complete_solution"]
    assert {lab.convention for lab in labels} == {"after_first_error=zero"}
    dropped = await omega_prm_labels(await inputs_for(ctx), OmegaPrmConfig(after_first_error="drop"))
    assert max(lab.extra["span"][1] for lab in dropped) == 3  # nothing after bad3


@pytest.mark.parametrize(("good", "reason"), [(8, "all_correct"), (0, "all_wrong")])
async def test_screening_drops_one_sided_questions(good: int, reason: str):
    """spec 08 §3.1: 32 root completions all correct (too easy) or all wrong (too hard): no labels."""
    policy = Completer(lambda steps: good)
    ctx = context(policy)
    add_path(ctx, 0, solution(4, 2))
    stats = LabelStats()
    assert await omega_prm_labels(await inputs_for(ctx), OmegaPrmConfig(), stats=stats) == []
    assert stats.screened_out == reason and stats.root_mc == good / 8
    assert [(steps, s.n) for steps, s in policy.requests] == [((), 32)]


async def test_binary_search_skips_a_failed_probe():
    """A probe failing at its prefix ends that search: no first-error label, counted as skipped."""
    policy = Completer(fail_on=lambda steps: len(steps) == 2)
    ctx = context(policy)
    add_path(ctx, 0, solution(4, 3))  # probes step boundary 2 first, which fails
    stats = LabelStats()
    assert await omega_prm_labels(await inputs_for(ctx), OmegaPrmConfig(), stats=stats) == []
    assert stats.skipped == 1 and stats.screened_out is None


def test_selection_score_hand_computed():
    """spec 08 §3.3: Q = 0.5^(1 - 0.5) * 0.9^(250 / 500) = sqrt(0.45) = 0.670820;
    U = 0.125 * sqrt(4) / (1 + 1) = 0.125."""
    assert selection_score(0.5, 250, 1, 4, OmegaPrmConfig()) == pytest.approx(0.795820, abs=1e-6)
    assert selection_score(1.0, 0, 0, 0, OmegaPrmConfig()) == pytest.approx(1.0)


async def test_tree_mode_searches_wrong_rollouts_by_q_plus_u():
    """spec 08 §3.3: the root's 16 wrong screening rollouts "ok{g} / bad / ANSWER:5" form the
    pool. Iteration 1 takes the first shortest one (g = 4; Q = 0.5^0.5 * 0.9^(18/500), U = 0),
    probes "ok4" (4/8) and "ok4 bad" (0/8). Iteration 2: a root rollout scores Q + 0.125 *
    sqrt(1) / 2 = Q + 0.0625, the new state "ok4"'s wrong rollouts Q + 0.125 / 1: one of those is
    taken, so its first probe is "ok4 ok4"."""
    policy = Completer()
    ctx = context(policy)  # the tree has no end leaves: the pool is rollouts only
    stats = LabelStats()
    labels = await omega_prm_labels(await inputs_for(ctx), OmegaPrmConfig(mode="tree", iterations=5), stats=stats)
    assert stats.iterations == 5 and stats.searches == 5
    assert [steps for steps, _ in policy.requests[:4]] == [
        (), ("ok4\n\n",), ("ok4\n\n", "bad\n\n"), ("ok4\n\n", "ok4\n\n")]
    assert len(policy.requests) <= 1 + 2 * 5
    assert labels and all(lab.mode == "tree" and lab.node_id is None for lab in labels)
    for lab in labels:
        assert (lab.step == "bad\n\n") == (not lab.label)  # the planted step is the first error, every time
        assert lab.value == (0.5 if lab.label else 0.0)
    assert len({(tuple(lab.prefix), lab.step) for lab in labels}) == len(labels)


async def test_tree_mode_pool_holds_the_trees_wrong_leaves():
    """The tree's wrong end leaves join the pool as the root's rollouts: "bad / ANSWER:5" (13
    tokens) beats every 18-token screening rollout on Q, so it is searched first; its one
    probe ("bad", 0/8) makes its first step the first error, labelled at its tree node."""
    policy = Completer()
    ctx = context(policy)
    ids = add_path(ctx, 0, ["bad\n\n", "ANSWER:5"])
    labels = await omega_prm_labels(await inputs_for(ctx), OmegaPrmConfig(mode="tree", iterations=1))
    assert [steps for steps, _ in policy.requests] == [(), ("bad\n\n",)]
    assert [(lab.node_id, lab.label, lab.value, lab.rollouts) for lab in labels] == [(ids[0], False, 0.0, 8)]
