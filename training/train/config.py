"""The configs every trainer builds on: :class:`BaseTrainConfig` (what the run folder and the
model loading read; :class:`training.rl.RLTrainConfig` derives from it) and
:class:`TrainConfig` (the supervised trainers' shared settings; each stage's config derives
from it beside its trainer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from training.export.formats import DEFAULT_QUESTION_SEP

Stage = Literal["prm", "sft", "dpo", "value", "grpo", "treepo", "rover"]


def _absolute(path: Path) -> Path:
    return path.expanduser().absolute()


AbsolutePath = Annotated[Path, AfterValidator(_absolute)]
"""A path made absolute (``~`` expanded) when a config is validated."""


class BaseTrainConfig(BaseModel):
    """Settings every trainer reads, supervised (:class:`TrainConfig`) and on-policy
    (:class:`training.rl.RLTrainConfig`): where it starts, where its run folder is, how it
    seeds and holds the weights, whether it resumes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: AbsolutePath = Field(description="The Hugging Face checkpoint to start from (a folder with a chat template).")
    out: AbsolutePath = Field(description="Run folder: checkpoints/ (resume points), model/ (the result), metrics.json, done.json.")
    seed: int = Field(0, description="Seed of torch (model init), the data order and the eval split.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field("auto", description="Weights while training; auto: bfloat16 on a GPU that has it, else float32.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass (less memory, slower).")
    resume: bool = Field(True, description="Resume from OUT's newest checkpoint; False: start afresh, clearing OUT.")
    keep_checkpoints: bool = Field(False, description="Keep OUT/checkpoints once the run is done (else removed: weights + optimizer state each).")


class TrainConfig(BaseTrainConfig):
    """Settings every supervised trainer shares. Defaults fit minutes on 2 CPU cores with the
    135M embedded model (hundreds of examples, prompts of a few hundred tokens); the same
    config runs on a GPU."""

    dataset: AbsolutePath = Field(description="A dataset folder written by the exporters (datasets.save_to_disk).")
    num_epochs: float = Field(1.0, gt=0, description="Passes over the training examples (ignored with max_steps).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; None: num_epochs decides.")
    learning_rate: float = Field(1e-5, gt=0, description="Peak AdamW learning rate (linear decay).")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Share of the steps spent warming the learning rate up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, description="Examples per device per forward pass.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Forward passes per optimizer step.")
    max_length: int = Field(512, ge=8, description="Longest example in tokens; longer ones are left out and counted.")
    lora: bool = Field(False, description="Train LoRA adapters (peft) on all linear layers, merged into the result.")
    lora_rank: int = Field(16, ge=1, description="LoRA rank r.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA inputs.")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="Share of the problems held out for evaluation (split by problem_id).")
    logging_steps: int = Field(10, ge=1, description="Optimizer steps between logged losses.")
    save_steps: int = Field(50, ge=1, description="Optimizer steps between resumable checkpoints (and evaluations).")
    save_total_limit: int | None = Field(2, ge=1, description="Newest checkpoints kept; None: all.")
    question_sep: str = Field(DEFAULT_QUESTION_SEP, description="The exporters' text between question and solution in plain-text prompts.")
