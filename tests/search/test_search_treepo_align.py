"""TreePO's block-aligned segments (``align_block``): the first segment is cut short so later
segment requests end one token past a KV block boundary; the last level gets the tokens back."""

from __future__ import annotations

import asyncio

from test_search_treepo import L, SegmentPolicy, make_ctx

from search.algorithms import run_search
from search.algorithms.treepo import TreePOConfig, segment_limits, trajectories


def test_segment_limits():
    # P = 10, B = 4: (10 - 1) % 4 = 1 token short first, back at the last level.
    assert segment_limits(10, 8, 6, 4) == {1: 7, 6: 9}
    assert segment_limits(9, 8, 6, 4) == {}  # already one past a boundary
    assert segment_limits(10, 8, 6, None) == {}
    assert segment_limits(10, 6, 6, 4) == {}  # L not a multiple of B: no alignment holds
    assert segment_limits(10, 8, 1, 4) == {}  # one level: nothing to align
    assert segment_limits(200, 32, 8, 32) == {1: 25, 8: 39}


def test_aligned_requests_end_one_past_a_block_and_keep_the_cap():
    # The fake prompt has 3 tokens; B = 4 -> the first segment is (3 - 1) % 4 = 2 tokens short.
    policy = SegmentPolicy(["x" * 200])
    ctx = make_ctx(policy, max_depth=4)
    result = asyncio.run(run_search(ctx, TreePOConfig(max_width=4, align_block=4)))
    root = len(ctx.root_prefix)
    assert root == 3
    first = [r for r in policy.requests if len(r[0]) == root]
    later = [r for r in policy.requests if len(r[0]) > root]
    assert {r[1].max_tokens for r in first} == {L - 2}
    assert later and all(len(p) % 4 == 1 for p, _ in later)
    by_depth = {len(p) - root: s.max_tokens for p, s in later}
    assert by_depth == {L - 2: L, 2 * L - 2: L, 3 * L - 2: L + 2}
    trajs = trajectories(result)
    assert trajs and all(len(t.token_ids) == 4 * L for t in trajs)  # the cap stays max_depth x L
    assert {t.finish_reason for t in trajs} == {"finished_with_max_infer_steps"}


def test_unaligned_by_default():
    policy = SegmentPolicy(["x" * 200])
    asyncio.run(run_search(make_ctx(policy, max_depth=3), TreePOConfig(max_width=4)))
    assert {r[1].max_tokens for r in policy.requests} == {L}


def test_segments_skip_logprobs_unless_a_policy_reads_them():
    """The release's defaults (fixed_avg, random cut) read no logprobs: segments are requested
    without them (less server work); probability-driven divergence asks for them."""
    plain = SegmentPolicy(["x" * 200])
    asyncio.run(run_search(make_ctx(plain, max_depth=3), TreePOConfig(max_width=4)))
    assert plain.requests and {s.logprobs for _, s in plain.requests} == {None}
    weighted = SegmentPolicy(["x" * 200])
    asyncio.run(run_search(make_ctx(weighted, max_depth=3),
                           TreePOConfig(max_width=4, divergence_policy="logprob_weighted_div")))
    assert {s.logprobs for _, s in weighted.requests} == {0}
    assert TreePOConfig(fallback_policy="min_logprob_segment").needs_logprobs
