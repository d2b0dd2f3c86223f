"""The TreePO sampling bench (benchmarks.treepo): its runs, trajectories and report (issue 12 §4)."""

from __future__ import annotations

import asyncio
from collections import Counter

from benchmarks.search_runs import RunMeasure
from benchmarks.treepo import TrajectoryScores, TreepoPoint, leaves_of, score_trajectories, treepo_entries, treepo_lines
from search.protocols import Problem, StepProposal, Usage, Verdict, VerdictStatus
from search.trace import SearchResult
from search.tree import Tree


def test_entries_pair_each_width_in_abba_order_with_equal_settings():
    entries = treepo_entries(12, (8, 16), segment_tokens=16, max_depth=8, concurrency=4, search={"divergence": 3})
    assert [(e.method, e.width) for e in entries] == [
        ("independent", 8), ("treepo", 8), ("treepo", 16), ("independent", 16)]
    for e in entries:
        assert e.cfg.steps.fixed_tokens == 16 and e.cfg.steps.max_depth == 8 and e.cfg.max_concurrent_problems == 4
        assert e.cfg.tasks.size == 12 and e.cfg.budget.max_generated_tokens is None
    assert entries[0].cfg.search.num_samples == 8 and entries[1].cfg.search.max_width == 8
    assert entries[1].cfg.search.divergence == 3
    # both sides may write the same longest trajectory: L x depth tokens
    assert entries[0].cfg.steps.solution_tokens == 16 * 8


def _tree(texts: list[list[str]]) -> Tree:
    tree = Tree([1, 2])
    for chain in texts:
        parent = 0
        for t in chain:
            parent = tree.add_child(parent, StepProposal(t, (5,), (-0.1,), "length"), terminal=False).id
    return tree


class _Tasks:
    """Correct iff the text ends in '=3'."""

    async def averify(self, problem_id: str, text: str) -> Verdict:
        return Verdict(VerdictStatus.CORRECT if text.endswith("=3") else VerdictStatus.INCORRECT)


def test_pass_at_w_reads_every_trajectory_of_both_kinds(tmp_path):
    # independent: every chain's last node; TreePO: its recorded trajectories
    (tmp_path / "traces").mkdir()
    flat = _tree([["a", "=3"], ["b", "=4"]])
    tree = _tree([["a", "=4"], ["b", "=5"]])
    runs = [SearchResult(None, [], flat, Usage(), "self_consistency"),
            SearchResult(None, [], tree, Usage(), "treepo", extra={"trajectories": [
                {"leaf": 2, "finish_reason": "finished", "answer": "4"},
                {"leaf": 4, "finish_reason": "early_stopped_by_eos", "answer": None}], "fallback_counter": 1})]
    for i, r in enumerate(runs):
        (tmp_path / "traces" / f"p{i}.json").write_text(r.to_trace(Problem(f"p{i}", "q")).model_dump_json())
    assert leaves_of(runs[0].to_trace(Problem("p", "q")), flat) == [2, 4]
    scores = TrajectoryScores()
    asyncio.run(score_trajectories(scores, tmp_path, _Tasks()))
    assert (scores.problems, scores.passed, scores.trajectories) == (2, 1, [2, 2])
    assert scores.reasons == Counter({"finished": 1, "early_stopped_by_eos": 1}) and scores.fallbacks == 1
    assert scores.pass_at_w == 0.5


def test_report_states_savings_against_the_targets():
    entries = treepo_entries(2, (8,), concurrency=2)

    def point(entry, generated, wall, passed):
        rows = [{"usage": {"prompt_tokens": 100, "cached_prompt_tokens": 40, "generated_tokens": generated}}]
        summary = {"generated_tokens": generated, "calls": 3, "accuracy": 0.5}
        m = RunMeasure(entry.method, entry.cfg, rows, summary, wall, 4, {}, {}, [], 0.0)
        return TreepoPoint(entry, m, TrajectoryScores(passed, 2, [8, 6], Counter(), 0))

    lines = treepo_lines([point(entries[0], 1000, 10.0, 1), point(entries[1], 500, 8.0, 2)])
    summary = lines[-1]
    assert "generated tokens 50.0% fewer" in summary and "wall 20.0% less" in summary
    assert "pass@W 1.000 vs 0.500" in summary
    assert "(usage: 47.2% fewer)" in summary  # 1 - (60 + 500) / (60 + 1000) computed tokens
    slower = treepo_lines([point(entries[0], 1000, 10.0, 1), point(entries[1], 1500, 12.0, 1)])[-1]
    assert "generated tokens 50.0% more" in slower and "wall 20.0% more" in slower


def test_entries_align_treepo_segments_and_default_to_basic_arithmetic():
    entries = treepo_entries(4, (8,), segment_tokens=32, align_block=32)
    assert {e.cfg.tasks.name for e in entries} == {"basic_arithmetic"}
    tree = next(e for e in entries if e.method == "treepo")
    assert tree.cfg.search.align_block == 32 and tree.cfg.steps.fixed_tokens == 32
    assert all(e.cfg.search.align_block is None for e in treepo_entries(4, (8,)) if e.method == "treepo")


def test_bench_server_settings_take_the_kv_cache_size():
    from benchmarks.cli.options import server_settings

    assert server_settings(None, None, 8).resolved_kv_cache_gib() == 8
    assert server_settings(None, 16).block_size == 16 and server_settings(None, 16).kv_cache_gib is None
