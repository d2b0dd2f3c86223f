"""Step beam guided by the symbolic step checker on the embedded model, in label mode with the
symbolic label generator: scores and labels agree with the checker (issue 27 §2)."""

import asyncio
import json

import pytest

from ponder.config import parse_run_config
from ponder.run import run_config
from search.trace import SearchTrace

pytestmark = pytest.mark.integration


def test_step_beam_with_symbolic_reward_and_labels(embedded_server, tmp_path):
    run_dir = tmp_path / "symbolic"
    cfg = parse_run_config({
        "name": "it-symbolic", "run_dir": str(run_dir), "mode": "label",
        "tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 3,
                  "config": {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1}},
        "search": {"algorithm": "step_beam", "beam_width": 2, "num_children": 2},
        "steps": {"max_depth": 4},
        "reward": {"kind": "symbolic"},
        "labels": [{"generator": "symbolic", "label_unchecked": True}],
        "export": ["prm"],
        "model": {"endpoints": [embedded_server.endpoint], "model": embedded_server.model},
    })
    outcome = asyncio.run(run_config(cfg))
    assert len(outcome.rows) == 2 and all(r["status"] != "error" for r in outcome.rows)
    labels_of: dict[str, list[dict]] = {}
    for path in (run_dir / "labels").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            lab = json.loads(line)
            labels_of.setdefault(lab["problem_id"], []).append(lab)
    scored = 0
    for path in (run_dir / "traces").glob("*.json"):
        trace = SearchTrace.model_validate(json.loads(path.read_text()))
        scores = {n.id: n.scores["prm"] for n in trace.nodes if "prm" in n.scores}
        scored += len(scores)
        assert set(scores.values()) <= {0.0, 0.5, 1.0}  # the score names the checker's status
        labels = labels_of.get(trace.problem_id, [])
        assert labels and all(lab["generator"] == "symbolic" and lab["rollouts"] == 0 for lab in labels)
        for lab in labels:
            if lab["node_id"] in scores and lab["label"] is not None:
                assert scores[lab["node_id"]] == (1.0 if lab["label"] else 0.0), lab
            else:
                assert lab["label"] is None or lab["node_id"] not in scores
    assert scored > 0
