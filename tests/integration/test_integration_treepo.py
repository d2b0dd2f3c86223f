"""TreePO sampling on the embedded model against a real local vLLM server (spec 03 §2, issue 12 §4)."""

import asyncio
import json

import pytest

from ponder.config import parse_run_config
from ponder.run import run_config
from search.algorithms.treepo import trajectories
from search.segments import PRIORITY
from search.trace import SearchTrace
from training.rl.advantages import tree_advantages

pytestmark = pytest.mark.integration


def test_treepo_run_on_embedded_server(embedded_server, tmp_path):
    cfg = parse_run_config({
        "name": "it-treepo", "run_dir": str(tmp_path / "treepo"),
        "tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 1,
                  "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}},
        "search": {"algorithm": "treepo", "max_width": 4, "divergence": 2},
        "steps": {"fixed_tokens": 8, "max_depth": 6},
        "model": {"endpoints": [embedded_server.endpoint], "model": embedded_server.model},
    })
    outcome = asyncio.run(run_config(cfg))
    assert len(outcome.rows) == 2
    for path in (tmp_path / "treepo" / "traces").glob("*.json"):
        trace = SearchTrace.model_validate(json.loads(path.read_text()))
        trajs = trajectories(trace)
        assert 1 <= len(trajs) <= 4 and all(t.finish_reason in PRIORITY for t in trajs)
        nodes = trace.nodes
        # every segment is at most L tokens and extends its parent (token-id prompts)
        assert all(0 < len(n.token_ids) <= 8 for n in nodes[1:])
        for t in trajs:
            assert t.token_ids == [tok for i in t.path for tok in nodes[i].token_ids]
            assert all(nodes[i].parent == (t.path[k - 1] if k else 0) for k, i in enumerate(t.path))
        assert len(tree_advantages([float(t.answer is not None) for t in trajs], [t.path for t in trajs])) == len(trajs)
    for row in outcome.rows:
        assert row["status"] in {"correct", "incorrect", "unparseable"} and row["usage"]["calls"] >= 2
