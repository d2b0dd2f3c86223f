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

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from search.protocols import ConfigError

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from training.train.common import Stage, TrainConfig, TrainResult

STAGES = ("prm", "sft", "dpo", "value")


def config_class(stage: str) -> type[TrainConfig]:
    """The config model of a stage.

    Raises:
        ConfigError: An unknown stage.
    """
    match stage:
        case "prm":
            from training.train.prm import PRMTrainConfig

            return PRMTrainConfig
        case "sft":
            from training.train.policy import SFTTrainConfig

            return SFTTrainConfig
        case "dpo":
            from training.train.policy import DPOTrainConfig

            return DPOTrainConfig
        case "value":
            from training.train.value import ValueTrainConfig

            return ValueTrainConfig
    raise ConfigError("stage", stage, f"expected one of {', '.join(STAGES)}")


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
    expected = config_class(stage)
    if type(config) is not expected:
        raise ConfigError("config", type(config).__name__, f"stage {stage} takes a {expected.__name__}")
    match stage:
        case "prm":
            from training.train.prm import train_prm

            return train_prm(config, callbacks=callbacks)  # type: ignore[arg-type]
        case "sft":
            from training.train.policy import train_sft

            return train_sft(config, callbacks=callbacks)  # type: ignore[arg-type]
        case "dpo":
            from training.train.policy import train_dpo

            return train_dpo(config, callbacks=callbacks)  # type: ignore[arg-type]
        case _:
            from training.train.value import train_value

            return train_value(config, callbacks=callbacks)  # type: ignore[arg-type]


__all__ = ["STAGES", "config_class", "make_config", "run_stage"]
