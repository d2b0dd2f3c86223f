"""The symbolic checker as a reward model, the combination rule, step beam guided by it, and
its labels (exported as stepwise PRM rows beside Math-Shepherd's)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "search"))
from search_fakes import Cand, ScriptedRewardModel, encode, make_ctx  # noqa: E402

from search.algorithms import StepBeamConfig, run_search  # noqa: E402
from search.labels import SymbolicLabelConfig, run_generator  # noqa: E402
from search.labels.inputs import LabelInputs  # noqa: E402
from search.labels.records import StepLabel  # noqa: E402
from search.labels.rollouts import LabelStats  # noqa: E402
from search.protocols import ClaimCheck, ConfigError, Problem, StepCheck, StepProposal  # noqa: E402
from training.export.formats import prm_rows, select_labels  # noqa: E402
from verifiers.pool import PoolConfig, WorkerPool  # noqa: E402
from verifiers.step_reward import (  # noqa: E402
    CombinedReward,
    SymbolicChecker,
    SymbolicCheckerConfig,
    SymbolicReward,
    combine,
    step_scores,
)

T, F, U = "checked_true", "checked_false", "unchecked"
CFG = SymbolicCheckerConfig()


@pytest.fixture(scope="module")
def pool() -> WorkerPool:
    with WorkerPool(PoolConfig(num_workers=2, preload=("sympy",))) as p:
        yield p


class FakeChecker:
    """A step checker scripted by step text."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses

    async def check(self, problem: Problem, steps) -> tuple[StepCheck, ...]:
        return tuple(StepCheck(self.statuses.get(s, U), (ClaimCheck(s, "true"),)) for s in steps)  # type: ignore[arg-type]


@pytest.mark.parametrize(("statuses", "carry", "expected"), [
    ([T, U, T], True, [1.0, None, 1.0]),
    ([T, F, T, U], True, [1.0, 0.0, 0.0, 0.0]),
    ([T, F, T, U], False, [1.0, 0.0, 1.0, None]),
    ([U, U], True, [None, None]),
])
def test_step_scores_carry_errors(statuses, carry, expected) -> None:
    config = SymbolicCheckerConfig(carry_errors=carry)
    assert step_scores([StepCheck(s) for s in statuses], config) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("prm", "symbolic", "rule", "expected"), [
    (0.9, 0.0, "veto", 0.0),     # a false claim vetoes a high PRM score
    (0.9, 1.0, "veto", 0.9),     # true claims leave the PRM's score
    (0.2, 1.0, "veto", 0.2),     # ... also a low one: the checker only lowers
    (0.7, None, "veto", 0.7),    # nothing checkable: the PRM's score
    (0.9, 0.0, "override", 0.0),
    (0.2, 1.0, "override", 1.0),
    (0.7, None, "override", 0.7),
])
def test_combination_rule(prm, symbolic, rule, expected) -> None:
    assert combine(prm, symbolic, rule, CFG) == expected


async def test_combined_reward_vetoes_the_prm_and_keeps_first() -> None:
    prm = ScriptedRewardModel({"a": 0.9, "b": 0.8, "c": 0.7}, default=0.6)
    combined = CombinedReward(prm, FakeChecker({"a": T, "b": F}), "veto")
    out = await combined.score(Problem("p", "q"), [["a", "b", "c"], ["a", "c"]], first=[1, 0])
    assert out.scores == ((0.0, 0.0), (0.9, 0.7))  # b is false, c after it carries the veto
    assert prm.firsts == [[1, 0]]
    assert out.usage.reward_calls == 1


async def test_symbolic_reward_scores_say_the_status(pool: WorkerPool) -> None:
    reward = SymbolicReward(SymbolicChecker(pool=pool))
    steps = ["3 + 4 = 7\n\n", "Then we think.\n\n", "7 * 2 = 15\n\n", "15 + 1 = 16\n\n"]
    out = await reward.score(Problem("p", "Compute (3 + 4) * 2 + 1."), [steps, steps[:2]], first=[0, 1])
    assert out.scores == ((1.0, 0.5, 0.0, 0.0), (0.5,))


STEP_BEAM = {
    (): [Cand("3 + 4 = 8\n\n", -0.01), Cand("3 + 4 = 7\n\n", -2.0)],
    ("3 + 4 = 8\n\n",): [Cand("8 * 2 = 16, ANSWER:16", finish="eos")],
    ("3 + 4 = 7\n\n",): [Cand("7 * 2 = 14, ANSWER:14", finish="eos")],
}


async def test_step_beam_guided_by_the_symbolic_checker(pool: WorkerPool) -> None:
    question = "What is (3 + 4) * 2?"
    by_logprob = await run_search(make_ctx(STEP_BEAM, question=question), StepBeamConfig(beam_width=1, num_children=2))
    assert by_logprob.answer == "16"  # without a judge the likelier, wrong step wins
    ctx = make_ctx(STEP_BEAM, question=question, reward_model=SymbolicReward(SymbolicChecker(pool=pool)))
    guided = await run_search(ctx, StepBeamConfig(beam_width=1, num_children=2))
    assert guided.answer == "14"
    assert sorted(n.scores.get("prm") for n in ctx.tree.nodes if n.depth == 1) == [0.0, 1.0]


def _add(tree, parent: int, text: str, terminal: bool = False) -> int:
    proposal = StepProposal(text, tuple(encode(text)), (-0.1,) * len(text), "eos" if terminal else "stop")
    return tree.add_child(parent, proposal, terminal=terminal).id


def _tree_inputs(checker) -> LabelInputs:
    """0 ─┬─ 1 "3 + 4 = 7" ─┬─ 2 "7 * 2 = 15" ── 3 "15 + 1 = 16" (terminal)
          │                 └─ 4 "7 * 2 = 14" ── 5 "ANSWER:15" (terminal)
          └─ 6 "Think." (leaf, nothing checkable)"""
    ctx = make_ctx({}, question="What is (3 + 4) * 2 + 1?", problem_id="p3")
    tree = ctx.tree
    one = _add(tree, 0, "3 + 4 = 7\n\n")
    two = _add(tree, one, "7 * 2 = 15\n\n")
    _add(tree, two, "15 + 1 = 16 ANSWER:16", terminal=True)
    four = _add(tree, one, "7 * 2 = 14\n\n")
    _add(tree, four, "ANSWER:15", terminal=True)
    _add(tree, 0, "Think.\n\n")
    return LabelInputs(ctx=ctx, model="m", verdicts={}, checker=checker)


async def test_symbolic_labels_and_their_prm_rows(pool: WorkerPool) -> None:
    labels = await run_generator(_tree_inputs(SymbolicChecker(pool=pool)), SymbolicLabelConfig(), LabelStats())
    got = {lab.node_id: (lab.label, lab.value, lab.extra["status"], lab.extra["after_false_step"]) for lab in labels}
    assert got == {1: (True, 1.0, T, False), 2: (False, 0.0, F, False), 3: (False, 0.0, T, True),
                   4: (True, 1.0, T, False)}
    assert all(lab.generator == "symbolic" and lab.rollouts == 0 and lab.mode == "symbolic" for lab in labels)
    assert labels[1].extra["claims"] == [{"text": "7 * 2 = 15", "status": "false", "detail": "7 * 2 = 15: difference -1"}]
    # mixable: exported per generator, side by side with Monte-Carlo labels of the same problem
    shepherd = StepLabel(problem_id="p3", question=labels[0].question, generator="math_shepherd", mode="per_step",
                         node_id=1, prefix=[], step="3 + 4 = 7\n\n", step_tokens=10, depth=1, value=0.5,
                         label=True, rollouts=4, correct=2, model="m")
    mixed = [*labels, shepherd]
    rows = prm_rows(select_labels(mixed, "symbolic")[0])
    assert sorted((r["completions"], r["labels"]) for r in rows.rows) == [
        (["3 + 4 = 7", "7 * 2 = 14"], [True, True]),
        (["3 + 4 = 7", "7 * 2 = 15", "15 + 1 = 16 ANSWER:16"], [True, False, False]),
    ]
    assert [r["labels"] for r in prm_rows(select_labels(mixed, "math_shepherd")[0]).rows] == [[True]]


async def test_symbolic_labels_without_carry_and_with_unchecked() -> None:
    checker = FakeChecker({"3 + 4 = 7\n\n": T, "7 * 2 = 15\n\n": F, "15 + 1 = 16 ANSWER:16": T, "7 * 2 = 14\n\n": T})
    labels = await run_generator(_tree_inputs(checker), SymbolicLabelConfig(carry_errors=False, label_unchecked=True),
                                 LabelStats())
    assert {lab.node_id: lab.label for lab in labels} == {1: True, 2: False, 3: True, 4: True, 5: None, 6: None}


async def test_symbolic_labels_need_a_checker() -> None:
    with pytest.raises(ConfigError, match="step checker"):
        await run_generator(_tree_inputs(None), SymbolicLabelConfig(), LabelStats())
