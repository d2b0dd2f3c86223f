"""The trainers on a CUDA GPU, unchanged (issue 10 §1: "runs on CPU for the embedded model and
unchanged on CUDA"). Skipped without a GPU (CI has none); run on a GPU machine with
``pytest tests/training``. Each trainer must put its weights on the GPU (not train a bf16
model on the CPU because a GPU exists), lower its loss, and write a checkpoint that loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.training.test_training_rl_trainer import ScriptedSampler, config, rewarded_mass, tasks
from tests.training.test_training_trainers import (  # noqa: F401  (base: fixture)
    FAST,
    assert_learned,
    assert_servable,
    base,
    prm_rows,
    save,
    sft_rows,
)
from training.rl.trainer import train_rl
from training.train import make_config, run_stage

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _on_gpu_while(monkeypatch: pytest.MonkeyPatch, module, name: str) -> list[str]:
    """Records the device of the model's parameters each time ``module.name`` runs."""
    seen: list[str] = []
    real = getattr(module, name)

    def spy(model, *args, **kwargs):
        seen.append(next(model.parameters()).device.type)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return seen


@pytest.mark.parametrize("stage", ["sft", "prm"])
def test_hf_trainers_train_on_the_gpu(base: Path, tmp_path: Path, stage: str) -> None:  # noqa: F811
    rows = sft_rows() if stage == "sft" else prm_rows()
    cfg = make_config(stage, dataset=save(tmp_path, stage, rows), base=base, out=tmp_path / "out",
                      max_steps=30, **{**FAST, "learning_rate": 5e-3})
    torch.cuda.reset_peak_memory_stats()
    result = run_stage(stage, cfg)
    assert torch.cuda.max_memory_allocated() > 0  # the Trainer put the model and batches on the GPU
    assert_learned(result)
    assert_servable(result.model_dir)


@pytest.mark.parametrize("recipe", ["grpo", "rover"])
def test_rl_loop_trains_on_the_gpu(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                   recipe: str) -> None:
    import training.rl.trainer as trainer

    seen = _on_gpu_while(monkeypatch, trainer, "_forward")
    cfg = config(base, tmp_path / "out", recipe, rounds=3, ppo_epochs=2)
    before = rewarded_mass(base)
    result = train_rl(cfg, ScriptedSampler(), tasks=tasks())
    assert seen and set(seen) == {"cuda"}
    assert rewarded_mass(result.model_dir) > before + 0.05
    assert_servable(result.model_dir)
