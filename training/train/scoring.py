"""One score in [0, 1] per example: the Trainer behind the generative PRM and the value model.

TRL 1.16 has no trainer for either (its PRM trainer is gone; its RewardTrainer is pairwise),
so :class:`ScoreTrainer` is a small subclass of ``transformers.Trainer``: the Trainer keeps
the loop, logging, evaluation and resumable checkpoints; a subclass supplies
``score_loss(model, inputs) -> (loss, scores)``. Examples are ``{"input_ids", "target"}``
with ``target`` in [0, 1]; evaluation reports ``eval_loss``, ``eval_mae`` (mean
|score - target|) and ``eval_accuracy`` (score and target on the same side of 0.5).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from transformers import EvalPrediction, Trainer, TrainerCallback, TrainingArguments

from training.train.common import Run, training_arguments
from training.train.config import TrainConfig
from training.train.data import trainer_datasets


@dataclasses.dataclass(frozen=True)
class PadCollator:
    """Pads ``input_ids`` to the longest in the batch; ``target`` (and ``weight``, when every
    example of the batch has one) becomes a float tensor.

    Left padding (the generative PRM: the verdict is read after the last prompt token of
    every row) also returns ``position_ids`` counted from each row's first real token.
    """

    pad_token_id: int
    padding_side: Literal["left", "right"] = "right"

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(e["input_ids"]) for e in examples)
        ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e["input_ids"])
            cols = slice(width - n, width) if self.padding_side == "left" else slice(0, n)
            ids[i, cols] = torch.tensor(e["input_ids"], dtype=torch.long)
            mask[i, cols] = 1
        batch = {"input_ids": ids, "attention_mask": mask,
                 "target": torch.tensor([float(e["target"]) for e in examples], dtype=torch.float32)}
        if all("weight" in e for e in examples):  # per-example loss weights (class balance)
            batch["weight"] = torch.tensor([float(e["weight"]) for e in examples], dtype=torch.float32)
        if self.padding_side == "left":
            batch["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        return batch


class ScoreTrainer(Trainer):
    """A Trainer whose loss compares one score per example with a target in [0, 1].

    Build it with :func:`score_trainer` (the arguments it needs and a :class:`PadCollator`).
    """

    def score_loss(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean loss, scores in [0, 1])`` of a batch; implemented by each trainer."""
        raise NotImplementedError

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        loss, scores = self.score_loss(model, inputs)
        return (loss, {"scores": scores}) if return_outputs else loss

    def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                        ignore_keys: list[str] | None = None
                        ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, scores = self.score_loss(model, inputs)
        if prediction_loss_only:
            return loss.detach(), None, None
        return loss.detach(), scores.detach().float(), inputs["target"]


def score_trainer(trainer_class: type[ScoreTrainer], config: TrainConfig, run: Run, model: Any,
                  train: list[dict[str, Any]], held: list[dict[str, Any]], *,
                  padding_side: Literal["left", "right"], callbacks: Sequence[TrainerCallback] = (),
                  **kwargs: Any) -> ScoreTrainer:
    """A ready :class:`ScoreTrainer` subclass of a run: the common arguments plus the ones a
    score needs (``remove_unused_columns=False``, ``label_names=["target"]``), a
    :class:`PadCollator`, the examples (``held`` evaluated when there are any) and
    :func:`score_metrics`.

    Args:
        kwargs: The subclass's own constructor arguments.
    """
    args = TrainingArguments(**training_arguments(config, run.layout, bool(held)),
                             remove_unused_columns=False, label_names=["target"])
    return trainer_class(model=model, args=args, data_collator=PadCollator(run.tokenizer.pad_token_id, padding_side),
                         **trainer_datasets(train, held), processing_class=run.tokenizer,
                         compute_metrics=score_metrics, callbacks=list(callbacks), **kwargs)


def score_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """``mae`` and ``accuracy`` (same side of 0.5) of the scores against the targets."""
    scores = np.asarray(prediction.predictions, dtype=np.float64).reshape(-1)
    targets = np.asarray(prediction.label_ids, dtype=np.float64).reshape(-1)
    return {"mae": float(np.mean(np.abs(scores - targets))),
            "accuracy": float(np.mean((scores > 0.5) == (targets > 0.5)))}
