"""Value model trainer: a regression head reads a partial solution and predicts its value.

Targets: the value dataset (``prompt`` = question + separator, ``completion`` = prefix + step
as generated, ``value`` in [0, 1]) -- ReST-MCTS* quality values (spec 02 section 7) or
AlphaMath / ROVER Q targets rescaled to [0, 1] by their generators.

Model: ``AutoModelForSequenceClassification`` with one label (for Llama-style bases, a
``score`` linear layer on the last token's hidden state, as ReST-MCTS*'s value model reads
the last position). The score is ``sigmoid(logit)`` and the loss the mean squared error
against the value (spec 02: MSE). The input is what :class:`models.pooling_prm.PoolingPRM`
sends in ``classify`` mode with its defaults: the question in the chat template (``template``,
``chat``), then the steps so far stripped and joined by ``step_joiner``.

Served with ``vllm serve OUT/model --runner pooling``, which pools the last token and, for one
label, applies the sigmoid: ``PoolingPRM(mode="classify")`` reads that probability as the step
score. AlphaMath's joint policy + value head (one model, SFT loss + value MSE at step ends) is
not built here.

Why not TRL: its RewardTrainer is pairwise (Bradley-Terry on chosen / rejected), not
regression, so :class:`ValueTrainer` is a small ``transformers.Trainer`` subclass
(:mod:`training.train.scoring`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import Field
from transformers import AutoModelForSequenceClassification, TrainerCallback

from models.tokenizer import HFTokenizer
from search.protocols import ConfigError, Tokenizer
from training.train.common import TrainResult, finish_run, load_model, lora_config, start_run
from training.train.config import TrainConfig
from training.train.data import question_and_prefix, split_examples, split_steps
from training.train.scoring import ScoreTrainer, score_trainer


class ValueTrainConfig(TrainConfig):
    """Value-head regression; ``template``, ``chat`` and ``step_joiner`` must match the
    PoolingPRM that serves it (the defaults are its defaults)."""

    learning_rate: float = Field(2e-5, gt=0, description="Peak AdamW learning rate (spec 02: 2e-5 / 3e-6).")
    template: str = Field("{question}", description="Text before the steps, with {question}.")
    chat: bool = Field(True, description="Wrap the question in the chat template (the steps follow it).")
    step_joiner: str = Field("\n\n", description="Text between steps; also splits a completion into its steps.")


def value_input_ids(tokenizer: Tokenizer, question: str, steps: Sequence[str], config: ValueTrainConfig) -> list[int]:
    """The model input for a question and its steps so far (PoolingPRM's classify input)."""
    text = config.template.format(question=question)
    ids = tokenizer.chat_prompt(text) if config.chat else tokenizer.encode(text)
    joined = config.step_joiner.join(s.strip() for s in steps)
    return ids + (tokenizer.encode(joined) if joined else [])


def value_examples(rows: Sequence[dict[str, Any]], tokenizer: Tokenizer, config: ValueTrainConfig
                   ) -> tuple[list[dict[str, Any]], int]:
    """``({"input_ids", "target"} per row, left out as too long)``."""
    out, too_long = [], 0
    for row, (question, prefix) in zip(rows, question_and_prefix(rows, config.question_sep), strict=True):
        value = float(row["value"])
        if not 0.0 <= value <= 1.0:
            raise ConfigError("dataset", value, "values must be in [0, 1]")
        steps = split_steps(prefix + row["completion"], config.step_joiner)
        ids = value_input_ids(tokenizer, question, steps, config)
        if len(ids) > config.max_length:
            too_long += 1
            continue
        out.append({"input_ids": ids, "target": value})
    return out, too_long


class ValueTrainer(ScoreTrainer):
    """MSE between ``sigmoid(logit)`` of the one-label head and the value target."""

    def score_loss(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
        scores = torch.sigmoid(out.logits.float().reshape(-1))
        loss = torch.nn.functional.mse_loss(scores, inputs["target"].to(scores.dtype))
        return loss, scores


def train_value(config: ValueTrainConfig, *, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Trains a value model from ``config.base`` (a causal LM gets a fresh one-label head);
    the result is ``OUT/model``, a sequence classifier.

    Raises:
        ConfigError: A bad base, dataset, run folder or setting (``lora`` without peft).
    """
    run = start_run("value", config)
    if run.finished is not None:
        return run.finished
    peft_config = lora_config(config, "SEQ_CLS")
    reader = HFTokenizer(config.base)
    data = split_examples(config, ("prompt", "completion", "value"), "value",
                          lambda rows: value_examples(rows, reader, config))
    model = load_model(AutoModelForSequenceClassification, config, peft_config, num_labels=1,
                       pad_token_id=run.tokenizer.pad_token_id)
    trainer = score_trainer(ValueTrainer, config, run, model, data.train, data.held, padding_side="right",
                            callbacks=callbacks)
    return finish_run(run, trainer, data.counts)
