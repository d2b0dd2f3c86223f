"""One round of the tiny loop on the embedded model: label -> train PRM -> judge -> train
policy -> evaluate, with real vLLM servers serving the trained checkpoints; then a re-run skips it all."""

import asyncio
import json

import pytest

from models.checkpoint import structure_problem
from ponder.loop.config import load_loop_config
from ponder.loop.runner import run_loop
from ponder.loop.summary import round_summary

pytestmark = pytest.mark.integration


def test_tiny_loop_round_trains_and_serves_checkpoints(embedded_checkpoint_dir, tmp_path):
    cfg = load_loop_config("configs/loop_tiny.yaml", {"loop_dir": str(tmp_path / "loop")})
    markers = asyncio.run(run_loop(cfg))
    assert [(m["round"], m["stage"]) for m in markers] == [
        (0, "judge"), (0, "eval"), (1, "label"), (1, "train_prm"), (1, "judge"), (1, "train_policy"), (1, "eval")]
    round1 = tmp_path / "loop" / "round-1"
    for stage in ("train_prm", "train_policy"):
        assert structure_problem(round1 / stage / "run" / "model") is None
    evaluated = json.loads((round1 / "eval" / "DONE").read_text())["outputs"]
    assert set(evaluated) == {"cot", "best_of_n"}
    assert all(v["problems"] == 3 and v["errors"] == 0 for v in evaluated.values())  # served and searched
    rows = [json.loads(x) for x in (round1 / "eval" / "best_of_n" / "results.jsonl").read_text().splitlines()]
    assert all(r["usage"]["reward_calls"] > 0 for r in rows)  # the trained PRM scored steps
    for r in (0, 1):  # each round's PRM judged the 6 held-out planted solutions, served as the searches use it
        judged = json.loads((tmp_path / "loop" / f"round-{r}" / "judge" / "judge.json").read_text())
        assert judged["solutions"] == 6 and judged["overall"]["step_auroc"] is not None
    report = (tmp_path / "loop" / "report.md").read_text()
    assert "| 1 | chain_sum x 3, seed 0 | 6 |" in report  # the step-judgement row of round 1
    steps = round_summary(round1)["label_steps"]  # steps per solution of the label search, shown in the report
    assert steps["solutions"] > 0 and f"| 1 | {steps['solutions']} | {steps['mean_steps']:.2f} |" in report
    again = asyncio.run(run_loop(cfg))
    assert all(m["skipped"] for m in again)
