"""benchmarks.rl's --until: train rounds 1..K, evaluate checkpoint-K, resume later to the end."""

from __future__ import annotations

from pathlib import Path

import ponder.rl
from benchmarks.rl import train_until
from tests.training.test_training_rl_trainer import ScriptedSampler, config, tasks
from tests.training.test_training_trainers import base  # noqa: F401  (fixture)


def test_until_stops_after_round_k_and_a_later_call_resumes(base: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    sampler = ScriptedSampler()
    monkeypatch.setattr(ponder.rl, "engine_sampler", lambda cfg, t: sampler)
    monkeypatch.setattr("benchmarks.rl.load_tasks", lambda cfg: tasks())
    cfg = config(base, tmp_path / "out", "grpo", rounds=3)
    model, rounds, name = train_until(cfg, 1)
    assert name == "eval-round-1.json" and [r["round"] for r in rounds] == [1]
    assert model == cfg.out / "checkpoints" / "checkpoint-1" and (model / "config.json").is_file()
    assert sampler.calls == [1]  # round 2 refused before sampling: nothing of it was trained
    model, rounds, name = train_until(cfg, None)  # resumes at round 2
    assert name == "evidence.json" and [r["round"] for r in rounds] == [1, 2, 3]
    assert sampler.calls == [1, 2, 3] and model == cfg.out / "model"
