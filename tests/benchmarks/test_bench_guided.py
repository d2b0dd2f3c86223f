"""bench guided's arms, problem set, token matching and table (issue 27 §4); the measured runs
need a server and are not unit-tested."""

from __future__ import annotations

import asyncio
import json

import pytest

from benchmarks.guided import (ArmResult, arm_config, chain_weight, common_ids, heldout_tasks, nearest_reference, parse_arm,
                               read_arm, read_vote_arm, record_wall, table_lines, verdict_lines)
from ponder.config import parse_run_config
from search.protocols import ConfigError, Problem, StepCheck, StepProposal, Usage, Verdict, VerdictStatus
from search.trace import SearchResult
from search.tree import Tree
from verifiers.planted import is_heldout
from verifiers.step_reward import SymbolicCheckerConfig

BASE = {"name": "g", "tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 40, "seed": 5,
                               "config": {"min_terms": 3, "max_terms": 3}},
        "steps": {"delimiter": "\n", "max_depth": 6, "max_step_tokens": 32},
        "reward": {"kind": "symbolic", "checker": {"provenance": True}}}


def test_arms_parse_to_their_searches_and_bad_forms_say_the_forms():
    sc, bon, beam = parse_arm("sc:8"), parse_arm("bon:16"), parse_arm("beam:2x4")
    assert sc.search == {"algorithm": "self_consistency", "num_samples": 8} and not sc.judged
    assert bon.search["num_samples"] == 16 and bon.search["answer_by"] == "vote" and bon.judged
    assert (beam.search["beam_width"], beam.search["num_children"], beam.search["score"]) == (2, 4, "reward_model")
    assert beam.dirname == "beam-2x4"
    vote = parse_arm("vote:8")
    assert vote.source == "sc:8" and vote.judged and vote.search["num_samples"] == 8
    over = parse_arm("vote:beam:2x4")
    assert over.source == "beam:2x4" and over.judged and over.search == beam.search and over.dirname == "vote-beam-2x4"
    assert parse_arm("vote:sc:8").source == "sc:8"
    for bad in ("sc", "sc:x", "mcts:8", "beam:2", "beam:2x", "vote:vote:8", "vote:beam:2"):
        with pytest.raises(ValueError, match="sc:N"):
            parse_arm(bad)


def test_arm_config_sets_search_and_run_dir_and_drops_the_judge_only_for_self_consistency(tmp_path):
    base = parse_run_config(BASE)
    sc = arm_config(base, parse_arm("sc:4"), tmp_path / "sc-4", "http://127.0.0.1:1", 32)
    assert sc.reward is None and sc.search.num_samples == 4 and sc.run_dir == str(tmp_path / "sc-4")
    assert sc.model.endpoints == ["http://127.0.0.1:1"] and sc.model.max_in_flight == 32
    beam = arm_config(base, parse_arm("beam:3x2"), tmp_path / "b")
    assert beam.reward.kind == "symbolic" and beam.reward.checker.provenance and beam.search.beam_width == 3
    assert beam.steps == base.steps and beam.tasks == base.tasks
    no_judge = parse_run_config({k: v for k, v in BASE.items() if k != "reward"})
    with pytest.raises(ConfigError, match="reward"):
        arm_config(no_judge, parse_arm("bon:8"), tmp_path / "x")


def test_heldout_tasks_keep_only_heldout_questions_in_order_and_refuse_too_few():
    base = parse_run_config(BASE)
    tasks = heldout_tasks(base, 5)
    assert len(tasks) == 5
    assert all(is_heldout("chain_sum", p.question) for p in tasks.problems)
    indices = [p.metadata["index"] for p in tasks.problems]
    assert indices == sorted(indices)
    with pytest.raises(ConfigError, match="tasks.size"):
        heldout_tasks(base, 40)


def test_the_tune_split_is_the_other_side_of_the_heldout_one():
    base = parse_run_config(BASE)
    tune = heldout_tasks(base, 5, "tune")
    assert len(tune) == 5 and not any(is_heldout("chain_sum", p.question) for p in tune.problems)
    assert not {p.id for p in tune.problems} & {p.id for p in heldout_tasks(base, 5).problems}
    with pytest.raises(ValueError, match="heldout, tune"):
        heldout_tasks(base, 5, "train")


def arm(label, judged, correct, tokens, calls=1):
    ids = [f"p{i}" for i in range(len(correct))]
    return ArmResult(label, judged, dict(zip(ids, correct)), {i: tokens for i in ids}, {i: calls for i in ids},
                     {i: 0 for i in ids}, dict(zip(ids, correct)), {i: 2 for i in ids})


def test_nearest_reference_is_nearest_by_token_ratio():
    sc4, sc8 = arm("sc:4", False, [True], 100), arm("sc:8", False, [True], 200)
    assert nearest_reference(arm("beam", True, [True], 140), [sc4, sc8]).label == "sc:4"  # 1.4x vs 0.7x
    assert nearest_reference(arm("beam", True, [True], 145), [sc4, sc8]).label == "sc:8"  # 1.45x vs 0.725x
    assert nearest_reference(arm("beam", True, [True], 0), [sc4]) is None


def test_table_pairs_each_judged_arm_with_the_nearest_sc_arm_over_common_problems():
    sc = arm("sc:8", False, [True, False, False, True], 200)
    bon = arm("bon:8", True, [True, True, False, True], 210)
    beam = arm("beam:2x4", True, [True, True, True], 300)  # p3 unfinished: all rows over p0-p2
    assert common_ids([sc, bon, beam]) == {"p0", "p1", "p2"}
    lines = table_lines([sc, bon, beam])
    assert lines[0] == "problems finished by every arm: 3"
    sc_row = next(line for line in lines if line.startswith("| sc:8 |"))
    assert "| 3 | 0.333 ± 0.272 |" in sc_row
    bon_vs = next(line for line in lines if line.startswith("| bon:8 | sc:8 |"))
    # paired differences (0, 1, 0): mean 1/3, sample sd 0.577, SE 0.333
    assert "| 1.05 | +0.333 ± 0.333 | 3 | 1 / 0 |  |" in bon_vs
    beam_vs = next(line for line in lines if line.startswith("| beam:2x4 | sc:8 |"))
    assert "| 1.50 |" in beam_vs and "NOT at equal tokens" in beam_vs


class _Tasks:
    """Two problems; a text (a path or an answer) is correct iff it ends in '3'."""

    problems = [Problem("p0", "q"), Problem("p1", "q")]

    async def averify(self, problem_id: str, text: str) -> Verdict:
        return Verdict(VerdictStatus.CORRECT if text.endswith("3") else VerdictStatus.INCORRECT)


def _trace(chains: list[list[str]], answers: list[str | None]) -> str:
    tree = Tree([1])
    for chain, answer in zip(chains, answers):
        parent = 0
        for k, text in enumerate(chain):
            node = tree.add_child(parent, StepProposal(text, (5,), (-0.1,), "stop"), terminal=k == len(chain) - 1)
            parent = node.id
        node.answer = answer
    return SearchResult("4", [], tree, Usage(), "step_beam").to_trace(Problem("p0", "q")).model_dump_json()


def test_read_arm_reads_rows_verifies_every_answered_leaf_and_sums_walls(tmp_path):
    (tmp_path / "traces").mkdir()
    usage = {"prompt_tokens": 50, "generated_tokens": 120, "cached_prompt_tokens": 0, "reward_tokens": 0, "calls": 3}
    rows = [{"id": "p0", "status": "incorrect", "correct": False, "usage": usage},
            {"id": "p1", "status": "error", "correct": False, "usage": usage},  # errored: not finished
            {"id": "p7", "status": "correct", "correct": True, "usage": usage}]  # not in the task set
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # a correct leaf the selection missed, a wrong one, and one with no answer (not counted)
    (tmp_path / "traces" / "p0.json").write_text(_trace([["1 + 2 = 3"], ["1 + 2 = 4"], ["1 +"]], ["3", "4", None]))
    record_wall(tmp_path, 2, 10.5, "load 1")
    record_wall(tmp_path, 1, 4.0, "load 2")
    got = asyncio.run(read_arm(tmp_path, parse_arm("beam:2x2"), _Tasks()))
    assert got.correct == {"p0": False} and got.generated == {"p0": 120} and got.calls == {"p0": 3}
    assert got.any_leaf == {"p0": True} and got.leaves == {"p0": 2}
    assert got.wall_seconds == 14.5 and [w["problems"] for w in got.walls] == [2, 1]
    empty = asyncio.run(read_arm(tmp_path / "missing", parse_arm("sc:2"), _Tasks()))
    assert empty.n == 0 and empty.wall_seconds == 0.0


class _Checker:
    """Claims ending '= 4' are false, other '=' claims true, the rest unchecked (a stand-in for the
    symbolic checker)."""

    config = SymbolicCheckerConfig(false_score=0.01)

    def __init__(self):
        self.paths = []

    async def check(self, problem, steps):
        self.paths.append(list(steps))
        return tuple(StepCheck("checked_false" if s.endswith("= 4") else "checked_true" if "=" in s else "unchecked",
                               ()) for s in steps)


def test_chain_weight_is_the_checkers_verdict_on_the_whole_chain():
    cfg = SymbolicCheckerConfig(false_score=0.01, unchecked_score=0.5, true_score=1.0)
    assert chain_weight(["checked_true", "unchecked"], cfg) == 1.0  # a closing 'The answer is N.' costs nothing
    assert chain_weight(["checked_true", "checked_false", "unchecked"], cfg) == 0.01
    assert chain_weight(["unchecked"], cfg) == 0.5 and chain_weight([], cfg) == 0.5


def test_vote_arm_rescores_the_sc_arms_own_chains_with_the_judge(tmp_path):
    (tmp_path / "traces").mkdir()
    usage = {"prompt_tokens": 50, "generated_tokens": 90, "cached_prompt_tokens": 0, "reward_tokens": 0, "calls": 1}
    (tmp_path / "results.jsonl").write_text(json.dumps(
        {"id": "p0", "status": "incorrect", "correct": False, "usage": usage}) + "\n")
    # majority says 4 (three chains), the checker rules two out and the third is a bare guess (0.5): the
    # checked chain for 3 (1.0) wins; the unanswered chain is not voted
    chains = [["1 + 1 = 2\n", "2 + 2 = 4"], ["1 + 3 = 4"], ["The answer is 4."], ["1 + 2 = 3\n", "The answer is 3."],
              ["1 +"]]
    (tmp_path / "traces" / "p0.json").write_text(_trace(chains, ["4", "4", "4", "3", None]))
    record_wall(tmp_path, 1, 2.0, "")
    checker = _Checker()
    sc = asyncio.run(read_arm(tmp_path, parse_arm("sc:4"), _Tasks()))
    vote = asyncio.run(read_vote_arm(tmp_path, parse_arm("vote:4"), _Tasks(), checker))
    assert sc.correct == {"p0": False} and vote.correct == {"p0": True}
    assert checker.paths == chains[:4]
    assert vote.verdicts == {"p0": [("false", False), ("false", False), ("unchecked", False), ("true", True)]}
    (line,) = verdict_lines(vote)
    assert "true 1 (25% of chains, 100% with the right answer)" in line and "false 2 (50% of chains, 0%" in line
    assert vote.judged and vote.label == "vote:4" and vote.generated == sc.generated and vote.calls == sc.calls
    assert vote.any_leaf == sc.any_leaf and vote.wall_seconds >= 2.0
    with pytest.raises(ValueError, match="runs nothing"):
        arm_config(parse_run_config(BASE), parse_arm("vote:4"), tmp_path)
    # vote:ARM re-scores any arm's directory the same way (here as if it were a beam's)
    over = asyncio.run(read_vote_arm(tmp_path, parse_arm("vote:beam:2x2"), _Tasks(), _Checker()))
    assert over.correct == {"p0": True} and over.label == "vote:beam:2x2" and over.generated == sc.generated
