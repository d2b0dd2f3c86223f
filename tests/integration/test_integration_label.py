"""`ponder label` end to end on the embedded model: ReST-MCTS* trees in data mode, five label
generators (two with real rollouts), label files and datasets on disk."""

import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml

from search.labels.records import StepLabel

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def test_ponder_label_writes_labels_and_datasets(embedded_server, tmp_path):
    run_dir = tmp_path / "label"
    config = {
        "name": "it-label",
        "tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 3, "seed": 3,
                  "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}},
        "search": {"algorithm": "rest_mcts", "preset": "data", "num_iterations": 3, "branch": 2},
        "steps": {"max_depth": 3, "max_step_tokens": 48},
        "budget": {"max_generated_tokens": 800},
        "reward": {"kind": "self_eval"},
        "model": {"endpoints": [embedded_server.endpoint], "model": embedded_server.model},
        "labels": [
            {"generator": "rest_value"}, {"generator": "rest_prm"}, {"generator": "rover"},
            {"generator": "math_shepherd", "num_rollouts": 2, "max_rollout_tokens": 64},
            {"generator": "omega_prm", "num_rollouts": 2, "screen_rollouts": 4, "max_rollout_tokens": 64},
        ],
    }
    path = tmp_path / "label.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "ponder.cli.main", "label", str(path), "--run-dir", str(run_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted((run_dir / "labels").glob("*.jsonl"))
    assert len(files) == 3  # one per problem, written before its result line
    labels = [StepLabel.model_validate_json(line) for f in files for line in f.read_text().splitlines()]
    assert labels, "no labels at all"
    assert {x.model for x in labels} == {embedded_server.model}
    shepherd = [x for x in labels if x.generator == "math_shepherd" and x.rollouts]
    assert all(x.rollouts == 2 and 0 <= x.correct <= 2 and len(x.verdicts) == 2 for x in shepherd)
    results = [yaml.safe_load(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert all(r["labels"] == sum(1 for _ in (run_dir / "labels" / f"{r['id']}.jsonl").read_text().splitlines())
               for r in results)
    assert any(r["label_usage"]["calls"] > 0 for r in results)  # real rollouts went to the server
    for name in ("prm_rest_value", "value_rest_value", "pairs_rover", "prm_math_shepherd", "sft"):
        folder = run_dir / "datasets" / name
        assert (folder / "README.md").exists(), name
        datasets.load_from_disk(str(folder))  # loads (possibly empty, with its columns)
    assert "dataset:" in done.stdout
