"""Trace export: a golden file, and the round trip through JSON and SearchTrace.to_tree."""

import json
import os
from pathlib import Path

from search.algorithms import MctsConfig, run_search
from search.trace import SearchTrace
from search.tree import Tree
from search_fakes import Cand, ScriptedRewardModel, make_ctx

GOLDEN = Path(__file__).parent / "golden" / "mcts_two_arms_trace.json"

SCRIPT = {
    (): [Cand("Try A.\n\n", -0.2), Cand("Try B.\n\n", -0.4)],
    ("Try A.\n\n",): [Cand("A gives ANSWER:3", -0.3, "eos"), Cand("A again.\n\n", -0.6)],
    ("Try B.\n\n",): [Cand("B gives ANSWER:4", -0.1, "eos"), Cand("B fails.\n\n", -1.0)],
}
SCORES = {"Try A.\n\n": 0.4, "Try B.\n\n": 0.7, "A gives ANSWER:3": 0.2, "A again.\n\n": 0.5,
          "B gives ANSWER:4": 0.9, "B fails.\n\n": 0.1}
TIMINGS = ("bookkeeping_seconds", "model_wait_seconds")


async def small_trace() -> tuple[SearchTrace, Tree]:
    ctx = make_ctx(SCRIPT, question="Pick A or B.", problem_id="golden-1", reward_model=ScriptedRewardModel(SCORES))
    result = await run_search(ctx, MctsConfig(num_simulations=3, num_children=2, selection="puct"))
    trace = result.to_trace(ctx.problem)
    usage = {**trace.usage, "wall_seconds": 0.0}
    extra = {k: (0.0 if k in TIMINGS else v) for k, v in trace.extra.items()}
    extra["parallel"] = {**extra["parallel"], "mean_in_flight": 0.0}  # a time average
    return trace.model_copy(update={"usage": usage, "extra": extra}), ctx.tree


async def test_trace_matches_golden_file():
    trace, _ = await small_trace()
    text = json.dumps(trace.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"
    if os.environ.get("PONDER_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


async def test_trace_round_trip():
    trace, tree = await small_trace()
    assert trace.schema_version == 1 and trace.answer == "4"
    again = SearchTrace.model_validate_json(trace.model_dump_json())
    assert again == trace
    rebuilt = again.to_tree()
    assert rebuilt.nodes == tree.nodes and rebuilt.root_prefix == tree.root_prefix
    assert rebuilt.path_token_ids(trace.path[-1]) == tree.path_token_ids(trace.path[-1])
