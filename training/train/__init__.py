"""Trainers: exported datasets on disk in, Hugging Face checkpoints that vLLM serves out.

One stage per module, each a pydantic config and a function (``train_<stage>(config)``):

- ``prm``   (:mod:`training.train.prm`): generative PRM -- the judge prompt of
  :mod:`models.prm_format` answered with ``+`` / ``-``; hard or soft labels.
- ``sft``   (:mod:`training.train.policy`): policy SFT on correct solutions (TRL SFTTrainer).
- ``dpo``   (:mod:`training.train.policy`): step-level DPO on sibling pairs (TRL DPOTrainer).
- ``value`` (:mod:`training.train.value`): value regression head, served as a pooling model.

Training reads only dataset folders, never live search objects. Every run folder is
resumable and a finished one is not trained again (:mod:`training.train.common`)::

    from training.train import make_config, run_stage
    result = run_stage("prm", make_config("prm", dataset="runs/x/datasets/prm", base=base, out="ckpt/prm"))
    result.model_dir  # ckpt/prm/model: weights, tokenizer, chat template

Importing this package is cheap; torch, transformers and TRL load with the first stage run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from search.protocols import ConfigError

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from training.train.common import TrainResult
    from training.train.config import Stage, TrainConfig

STAGES = ("prm", "sft", "dpo", "value")


def _stage(stage: str) -> tuple[type[TrainConfig], Callable[..., TrainResult]]:
    """A stage's config model and trainer function (imported on first use).

    Raises:
        ConfigError: An unknown stage.
    """
    match stage:
        case "prm":
            from training.train.prm import PRMTrainConfig, train_prm

            return PRMTrainConfig, train_prm
        case "sft":
            from training.train.policy import SFTTrainConfig, train_sft

            return SFTTrainConfig, train_sft
        case "dpo":
            from training.train.policy import DPOTrainConfig, train_dpo

            return DPOTrainConfig, train_dpo
        case "value":
            from training.train.value import ValueTrainConfig, train_value

            return ValueTrainConfig, train_value
    raise ConfigError("stage", stage, f"expected one of {', '.join(STAGES)}")


def config_class(stage: str) -> type[TrainConfig]:
    """The config model of a stage.

    Raises:
        ConfigError: An unknown stage.
    """
    return _stage(stage)[0]


def make_config(stage: str, **options: Any) -> TrainConfig:
    """A validated config of ``stage`` from keyword options.

    Raises:
        ConfigError: An unknown stage, option or invalid value (the first one found).
    """
    import pydantic

    try:
        return config_class(stage)(**options)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(".".join(str(p) for p in first["loc"]) or "options",
                          first.get("input"), first["msg"]) from None


def run_stage(stage: Stage | str, config: TrainConfig, *, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Runs one training stage (resuming, or a no-op when its run folder is finished).

    Raises:
        ConfigError: An unknown stage, or a config of another stage.
    """
    expected, train = _stage(stage)
    if type(config) is not expected:
        raise ConfigError("config", type(config).__name__, f"stage {stage} takes a {expected.__name__}")
    return train(config, callbacks=callbacks)


__all__ = ["STAGES", "config_class", "make_config", "run_stage"]
