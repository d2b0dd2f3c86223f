"""Solve mode cannot see the gold answer: not in any prompt, not reachable from the context."""

import dataclasses
import types

import pytest

from search.algorithms import (
    BestFirstConfig,
    BestOfNConfig,
    CotConfig,
    DvtsConfig,
    MctsConfig,
    SelfConsistencyConfig,
    StepBeamConfig,
    run_search,
)
from search.protocols import Problem, Verdict, VerdictStatus
from search_fakes import Cand, ScriptedRewardModel, encode, make_ctx

SENTINEL = "GOLD-7f3a9c"
TASK = {"id": "leak-1", "question": "What is 6*7?", "gold": SENTINEL}


def script(steps):
    if len(steps) >= 2:
        return [Cand("So ANSWER:42", finish="eos"), Cand("Or ANSWER:41", finish="eos")]
    return [Cand(f"step{len(steps)}a\n\n"), Cand(f"step{len(steps)}b\n\n")]


def reachable_strings(root, limit=20_000):
    """Every string reachable from ``root`` through attributes, containers and closures."""
    seen, stack, found = set(), [root], []
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (int, float, bool, type(None), type, types.ModuleType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, (str, bytes)):
            found.append(obj if isinstance(obj, str) else obj.decode("latin-1"))
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, (types.FunctionType, types.MethodType)):
            fn = getattr(obj, "__func__", obj)
            stack.append(getattr(obj, "__self__", None))
            stack.extend(c.cell_contents for c in fn.__closure__ or ())
            stack.extend(fn.__defaults__ or ())
        else:
            if dataclasses.is_dataclass(obj):
                stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
            stack.extend(vars(obj).values() if hasattr(obj, "__dict__") else ())
            stack.extend(getattr(obj, s) for s in getattr(type(obj), "__slots__", ()) if hasattr(obj, s))
    return found


def contains(seq, sub):
    return any(seq[i : i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def test_problem_has_no_gold_field():
    assert "gold" not in {f.name for f in dataclasses.fields(Problem)}


CONFIGS = [
    CotConfig(),
    SelfConsistencyConfig(num_samples=3),
    BestOfNConfig(num_samples=3),
    StepBeamConfig(beam_width=2, num_children=2),
    DvtsConfig(num_samples=4, subtree_width=2),
    BestFirstConfig(expansion_width=2),
    MctsConfig(num_simulations=6, num_children=2),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.algorithm)
async def test_solve_mode_never_sends_or_holds_the_gold(config):
    rm = ScriptedRewardModel()
    ctx = make_ctx(script, question=TASK["question"], problem_id=TASK["id"], reward_model=rm)
    result = await run_search(ctx, config)
    assert result.answer == "42" or result.answer == "41"
    gold_tokens = encode(SENTINEL)
    assert ctx.policy.requests
    assert not any(contains(prefix, gold_tokens) for prefix, _ in ctx.policy.requests)
    assert not any(SENTINEL in step for call in rm.calls for path in call for step in path)
    assert ctx.oracle is None
    assert not any(SENTINEL in s for s in reachable_strings(ctx))
    assert not any(SENTINEL in s for s in reachable_strings(result))


def test_the_leak_detector_finds_a_gold_captured_by_an_oracle():
    gold = TASK["gold"]

    async def oracle(text: str) -> Verdict:  # label mode: the oracle closes over the gold
        return Verdict(VerdictStatus.CORRECT if gold in text else VerdictStatus.INCORRECT)

    ctx = make_ctx(script, question=TASK["question"], oracle=oracle)
    assert any(SENTINEL in s for s in reachable_strings(ctx))


@pytest.mark.parametrize("algorithm", ["mc_nest", "mctsr"])
async def test_self_refine_never_sends_or_holds_the_gold(algorithm):  # spec 01 §8: no oracle
    from search.algorithms import parse_algorithm_config
    from search_fakes import make_chat_ctx

    def reply(turns, count):
        return " 40" if turns[-1] == ("assistant", "Score:") else "So ANSWER:42"

    ctx = make_chat_ctx(reply, question=TASK["question"], problem_id=TASK["id"])
    result = await run_search(ctx, parse_algorithm_config({"algorithm": algorithm, "num_rollouts": 3}))
    assert result.answer == "42" and len(ctx.tree) > 3
    assert not any(contains(prefix, encode(SENTINEL)) for prefix, _ in ctx.policy.requests)
    assert ctx.oracle is None
    assert not any(SENTINEL in s for s in reachable_strings(ctx))
    assert not any(SENTINEL in s for s in reachable_strings(result))
