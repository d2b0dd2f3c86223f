"""The on-policy trainer on the embedded model with real vLLM servers (issue 12 §3, 15 §1):
round 1 samples TreePO trees from the base, round 2 from round 1's trained checkpoint, served
like the base; rollouts carry tree paths and segment lengths; the result is servable."""

import json

import pytest

from models.checkpoint import structure_problem
from ponder.config import DEFAULT_SYSTEM_PROMPT
from ponder.rl import train_policy_rl
from training.rl import RLTrainConfig
from training.rl.rollout import load_rollouts

pytestmark = pytest.mark.integration
TASKS = {"source": "reasoning_gym", "name": "chain_sum", "size": 4, "seed": 5,
         "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}


def test_treepo_rounds_sample_the_served_checkpoints(embedded_checkpoint_dir, tmp_path):
    config = RLTrainConfig(recipe="treepo", base=embedded_checkpoint_dir, out=tmp_path / "out", tasks=TASKS, rounds=2,
                           prompts_per_round=2, n=4, segment_tokens=16, max_tokens=32, mini_batch_size=8,
                           micro_batch_size=4, drop_uniform_groups=False, system_prompt=DEFAULT_SYSTEM_PROMPT)
    result = train_policy_rl(config)
    assert structure_problem(result.model_dir) is None
    for r in (1, 2):
        rollouts = load_rollouts(tmp_path / "out" / "rounds" / f"round-{r}" / "rollouts.jsonl")
        assert {x.problem_id for x in rollouts} and all(x.path and x.response_ids for x in rollouts)
        assert all(sum(x.segment_lengths) == len(x.response_ids) for x in rollouts)
        assert all(len(x.path) <= 2 for x in rollouts)  # 32 tokens / 16-token segments
        metrics = json.loads((tmp_path / "out" / "rounds" / f"round-{r}" / "metrics.json").read_text())
        assert metrics["steps"] and metrics["trajectories_per_prompt"]["max"] <= 4
    second = json.loads((tmp_path / "out" / "rounds" / "round-2" / "metrics.json").read_text())
    assert second["round"] == 2 and second["sample_seconds"] > 0
