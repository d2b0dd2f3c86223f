"""The on-policy trainer on a tiny random Llama built in the test (issue 12 §3, issue 15 §1).

The sampler is a scripted stand-in for the vLLM-served policy: it samples the round's
checkpoint with transformers (independent responses, or a 4 x 2 tree of 2-token segments
with TreePO paths: 4 first segments, 2 children each) and rewards a response whose first character is a lowercase letter. Each recipe
must raise the policy's probability of such a start; ROVER's loss falls over the epochs of
a round; a run killed mid-round resumes from its last round checkpoint to the same weights.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models.checkpoint import structure_problem
from models.tokenizer import HFTokenizer
from search.protocols import Problem
from tests.training.test_training_trainers import CHAT_TEMPLATE, base  # noqa: F401  (fixture)
from training.rl.config import RLTrainConfig
from training.rl.rollout import Rollout
from training.rl.trainer import train_rl
from verifiers.tasks import TaskSet

torch.set_num_threads(1)
PROBLEMS = [Problem(id=f"p{i}", question=f"Q{i}: say a number") for i in range(4)]
REWARDED = string.ascii_lowercase  # about a quarter of the tiny model's first tokens
TASKS = {"source": "jsonl", "path": "unused.jsonl"}  # the task set is passed in (verified by the sampler)
FAST = {"learning_rate": 1e-2, "prompts_per_round": 4, "n": 8, "max_tokens": 4, "mini_batch_size": 16,
        "micro_batch_size": 8, "temperature": 1.0}


class ScriptedSampler:
    """Samples a checkpoint with transformers; reward 1 when the response starts with a digit."""

    def __init__(self, tree: bool = False) -> None:
        self.tree = tree
        self.calls: list[int] = []

    def _sample(self, model, tok, prefix: list[int], n: int, tokens: int, seed: int) -> list[list[int]]:
        torch.manual_seed(seed)
        out = model.generate(torch.tensor([prefix]), do_sample=True, temperature=1.0, top_k=0, max_new_tokens=tokens,
                             min_new_tokens=tokens, num_return_sequences=n, pad_token_id=tok.pad_token_id)
        return [row[len(prefix):].tolist() for row in out]

    async def __call__(self, checkpoint: Path, problems, r: int) -> list[Rollout]:
        self.calls.append(r)
        tok = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(checkpoint), local_files_only=True).eval()
        out = []
        for i, p in enumerate(problems):
            prompt = HFTokenizer(checkpoint).chat_prompt(p.question, None)  # as ponder prompts
            seed = 1000 * r + i
            if not self.tree:
                for resp in self._sample(model, tok, prompt, 8, 4, seed):
                    out.append(self._rollout(tok, p, prompt, resp))
                continue
            node = 0  # a 4 x 2 tree of 2-token segments: paths (1, 2), (1, 3), (4, 5), (4, 6), ...
            for first in self._sample(model, tok, prompt, 4, 2, seed):
                node += 1
                parent = node
                for second in self._sample(model, tok, prompt + first, 2, 2, seed + 500 + node):
                    node += 1
                    out.append(self._rollout(tok, p, prompt, first + second, (parent, node), (2, 2)))
        return out

    @staticmethod
    def _rollout(tok, p, prompt, resp, path=None, lengths=None) -> Rollout:
        text = tok.decode(resp)
        return Rollout(p.id, tuple(prompt), tuple(resp), text, float(text[:1] in REWARDED), "length",
                       path=path, segment_lengths=lengths)


def rewarded_mass(checkpoint: Path) -> float:
    """The policy's probability that a response starts with a rewarded character, averaged over the prompts."""
    tok = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), local_files_only=True).eval()
    ids = [tok.convert_tokens_to_ids(c) for c in REWARDED]
    total = 0.0
    with torch.no_grad():
        for p in PROBLEMS:
            prompt = HFTokenizer(checkpoint).chat_prompt(p.question, None)
            probs = model(torch.tensor([prompt])).logits[0, -1].softmax(-1)
            total += float(probs[ids].sum())
    return total / len(PROBLEMS)


def tasks() -> TaskSet:
    return TaskSet(PROBLEMS, {p.id: "0" for p in PROBLEMS}, verifier=None)  # type: ignore[arg-type]


def config(base: Path, out: Path, recipe: str, **options) -> RLTrainConfig:  # noqa: F811
    return RLTrainConfig(recipe=recipe, base=base, out=out, tasks=TASKS, **{**FAST, **options})


@pytest.mark.parametrize(("recipe", "options"), [
    ("grpo", {}),
    ("treepo", {"rounds": 4, "learning_rate": 3e-3}),  # 4 distinct first segments a prompt: slower
    ("rover", {}),
    ("rover", {"sampler": "tree", "rover_target": "tree"}),
])
def test_recipes_raise_the_rewarded_behaviour_and_write_a_servable_checkpoint(base: Path, tmp_path: Path,  # noqa: F811
                                                                              recipe: str, options: dict) -> None:
    cfg = config(base, tmp_path / "out", recipe, **{"rounds": 3, "ppo_epochs": 2, **options})
    sampler = ScriptedSampler(tree=cfg.resolved_sampler == "tree")
    before = rewarded_mass(base)
    result = train_rl(cfg, sampler, tasks=tasks())
    after = rewarded_mass(result.model_dir)
    assert after > before + 0.05, (before, after)
    assert structure_problem(result.model_dir) is None
    assert AutoTokenizer.from_pretrained(str(result.model_dir), local_files_only=True).chat_template == CHAT_TEMPLATE
    assert sampler.calls == list(range(1, cfg.rounds + 1))
    rounds = result.metrics["rounds"]
    assert len(rounds) == cfg.rounds and all(r["steps"] for r in rounds)
    step = rounds[0]["steps"][0]
    assert {"loss", "grad_norm", "entropy"} <= set(step)
    if recipe == "rover":  # spec 06 §5 statistics
        assert {"target_mean", "target_min", "target_max", "next_q_mean", "next_q_min", "next_q_max"} <= set(step)
    per_prompt = json.loads((tmp_path / "out" / "rounds" / "round-1" / "metrics.json").read_text())["per_prompt"]
    assert set(per_prompt) == {p.id for p in PROBLEMS}
    assert all(sum(v["centred"]) == pytest.approx(0.0, abs=1e-9) for v in per_prompt.values())
    assert not (tmp_path / "out" / "checkpoints").exists()
    again = train_rl(cfg, sampler, tasks=tasks())
    assert again.already_done and len(sampler.calls) == cfg.rounds


def test_rover_loss_falls_over_the_epochs_of_a_round(base: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = config(base, tmp_path / "out", "rover", rounds=1, ppo_epochs=6, learning_rate=1e-3)
    result = train_rl(cfg, ScriptedSampler(), tasks=tasks())
    losses = [s["loss"] for s in result.metrics["rounds"][0]["steps"]]
    assert len(losses) == 12 and sum(losses[-2:]) < 0.8 * sum(losses[:2]), losses


def test_a_killed_run_resumes_from_its_round_checkpoint(base: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = config(base, tmp_path / "killed", "grpo", rounds=2)

    def kill(r: int, step: int, metrics: dict) -> None:
        if r == 2:
            raise KeyboardInterrupt

    sampler = ScriptedSampler()
    with pytest.raises(KeyboardInterrupt):
        train_rl(cfg, sampler, tasks=tasks(), on_step=kill)
    out = tmp_path / "killed"
    assert (out / "checkpoints" / "checkpoint-1" / "round.json").is_file()
    assert (out / "rounds" / "round-2" / "rollouts.jsonl").is_file() and not (out / "done.json").exists()
    resumed = train_rl(cfg, sampler, tasks=tasks())
    assert sampler.calls == [1, 2]  # round 2's rollouts were saved: not sampled again
    assert resumed.metrics["resumed_from_round"] == 1
    straight = train_rl(config(base, tmp_path / "straight", "grpo", rounds=2), ScriptedSampler(), tasks=tasks())
    a = AutoModelForCausalLM.from_pretrained(str(resumed.model_dir), local_files_only=True).state_dict()
    b = AutoModelForCausalLM.from_pretrained(str(straight.model_dir), local_files_only=True).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_config_errors_name_the_field(base: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="rover_target='tree' needs the tree sampler"):
        config(base, tmp_path / "x", "rover", rover_target="tree")
    with pytest.raises(ValueError, match="recipe"):
        config(base, tmp_path / "x", "ppo")


def test_cli_trains_a_recipe_and_the_presets_validate(base: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    import yaml
    from typer.testing import CliRunner

    import ponder.rl
    from ponder.cli.main import app
    from ponder.config import read_yaml, validated
    from ponder.loop.config import load_loop_config

    root = Path(__file__).parents[2]
    small = validated(RLTrainConfig, {**read_yaml(root / "configs" / "rl" / "small.yaml"), "recipe": "treepo",
                                      "base": "b", "out": "o"})
    assert small.resolved_sampler == "tree" and small.tree_sampler()[1].max_depth == 3
    assert load_loop_config(root / "configs" / "loop_rl.yaml").policy_recipe == "rover"

    sampler = ScriptedSampler()
    monkeypatch.setattr(ponder.rl, "engine_sampler", lambda config, tasks, model=None: sampler)
    cfg = tmp_path / "rl.yaml"
    cfg.write_text(yaml.safe_dump({"tasks": TASKS, **FAST, "rounds": 1}))
    import verifiers.tasks

    monkeypatch.setattr(verifiers.tasks, "load_tasks", lambda cfg: tasks())
    args = ["train", "rover", str(cfg), "--out", str(tmp_path / "out"), "--base", str(base)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "round 1: reward" in result.output and sampler.calls == [1]
    assert structure_problem(tmp_path / "out" / "model") is None
    again = CliRunner().invoke(app, args)
    assert "already trained" in again.output
    bad = CliRunner().invoke(app, [*args[:3], "--out", str(tmp_path / "o2"), "--base", str(base), "--lr", "-1"])
    assert bad.exit_code != 0 and "learning_rate" in bad.output
