"""Generative PRM trainer: a causal LM learns to answer the judge prompt with ``+`` or ``-``.

Data: a stepwise PRM dataset (``prompt``, ``completions``, ``labels``: ``list[bool]``, or
``list[float]`` in [0, 1] for soft labels). Each step ``j`` of a row is one example: the input
is the judge prompt :class:`models.prm_format.JudgeFormat` builds for the row's question and
steps ``0..j`` (a prefix folded into the prompt comes first, split at ``step_delimiter``) --
token for token the prompt :class:`models.reward.GenerativePRM` sends to vLLM -- and the
target is ``labels[j]`` as a probability ``q`` (True: 1, False: 0). Identical prompts count
once (chains of one tree share their first steps); longer than ``max_length``: left out.

Loss: with ``P`` and ``N`` the next-token probabilities (softmax over the whole vocabulary)
summed over the positive and the negative label ids -- the ids GenerativePRM reads --
``loss = -(q log P + (1 - q) log N)``. It is smallest at ``P = q``, ``N = 1 - q``, so the
score GenerativePRM computes, ``P / (P + N)``, learns ``q``: soft labels train as target
probabilities. For a hard label it is the token cross-entropy of SFT on the one label token
(prompt = judge prompt, completion = ``+`` or ``-``), and mass on other tokens is pushed to
zero either way, so the top-k fallback of older vLLMs still finds the labels.

Balance (``balance``, on by default): a label run's share of True labels is often far from
one half (Math-Shepherd labels of a weak policy: 13-25 % True), and a judge trained on them
learns to say ``-`` to everything. With ``balance`` every training example of the minority
class (target >= 0.5 counts as positive) weighs more: example ``i`` of class ``c`` gets
``w_i = n / (2 n_c)`` (mean weight 1 over the training examples), and the batch loss is the
mean of ``w_i * loss_i``, so both classes carry half of the objective. Evaluation stays
unweighted.

Why not TRL's SFTTrainer: soft targets need this two-group loss, which TRL does not have
(its PRM trainer was removed), and reading the verdict at one position (``logits_to_keep=1``)
spares the vocabulary-sized logits of every prompt token. :class:`JudgeTrainer` is therefore
a small ``transformers.Trainer`` subclass (:mod:`training.train.scoring`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from pydantic import Field
from transformers import AutoModelForCausalLM, TrainerCallback

from models.prm_format import (
    DEFAULT_PRM_TEMPLATE,
    NEGATIVE_LABEL,
    POSITIVE_LABEL,
    JudgeFormat,
)
from models.tokenizer import HFTokenizer
from search.protocols import ConfigError, Tokenizer
from training.train.common import TrainResult, finish_run, load_model, lora_config, start_run
from training.train.config import TrainConfig
from training.train.data import load_rows, question_and_prefix, split_rows, split_steps
from training.train.scoring import ScoreTrainer, score_trainer


class PRMTrainConfig(TrainConfig):
    """Generative PRM training; the judge fields must match the reward config that serves it
    (their defaults are :class:`models.reward.GenerativePRM`'s)."""

    learning_rate: float = Field(2e-5, gt=0, description="Peak AdamW learning rate (linear decay).")
    template: str = Field(DEFAULT_PRM_TEMPLATE, description="Judge prompt with {question} and {steps}.")
    response_prefix: str = Field("", description="Text at the start of the judge's reply, before the verdict.")
    chat: bool = Field(True, description="Wrap the judge prompt in the chat template.")
    positive: str = Field(POSITIVE_LABEL, description="Text of the 'correct' verdict token.")
    negative: str = Field(NEGATIVE_LABEL, description="Text of the 'wrong' verdict token.")
    step_delimiter: str = Field("\n\n", description="Splits a prefix folded into a prompt into steps.")
    train_layers: int | None = Field(
        None, ge=1, description="Train only the last N decoder layers and the final norm (embeddings, the tied "
        "output layer and the lower layers frozen): the backward pass stops at the lowest trained layer, ~2x faster "
        "on a CPU with N a quarter of the layers; None: every weight trains.")
    balance: bool = Field(True, description="Weigh the training examples so that right (target >= 0.5) and wrong "
                          "steps carry equal total weight (see the module docstring); False: every example weighs 1.")

    def judge_format(self) -> JudgeFormat:
        """The :class:`JudgeFormat` these settings describe."""
        return JudgeFormat(template=self.template, response_prefix=self.response_prefix, chat=self.chat,
                           positive=self.positive, negative=self.negative)


@dataclasses.dataclass
class JudgeExamples:
    """Training examples of the judge and what was left out.

    Attributes:
        examples: ``{"input_ids": judge prompt ids, "target": q in [0, 1]}`` each.
        too_long: Steps whose prompt is longer than ``max_length``.
        duplicates: Steps whose prompt another step already gave.
    """

    examples: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    too_long: int = 0
    duplicates: int = 0


def judge_examples(rows: Sequence[dict[str, Any]], tokenizer: Tokenizer, judge: JudgeFormat, *,
                   question_sep: str = "\n\n", step_delimiter: str = "\n\n",
                   max_length: int | None = None) -> JudgeExamples:
    """One example per labelled step of stepwise PRM rows.

    Args:
        rows: Rows with ``prompt``, ``completions``, ``labels`` (and ``problem_id``).
        tokenizer: The judge's tokenizer (the one the served PRM uses).
        judge: Prompt template and verdict tokens.
        question_sep: The exporters' text between question and steps.
        step_delimiter: Splits a prefix folded into a prompt into its steps.
        max_length: Longest prompt kept, in tokens; None: no limit.

    Returns:
        The examples, first occurrence of each prompt, in row order.
    """
    out = JudgeExamples()
    seen: set[tuple[int, ...]] = set()
    for row, (question, prefix) in zip(rows, question_and_prefix(rows, question_sep), strict=True):
        if len(row["completions"]) != len(row["labels"]):
            raise ConfigError("dataset", row.get("problem_id"), "a row has more or fewer labels than steps")
        steps = split_steps(prefix, step_delimiter)
        for step, label in zip(row["completions"], row["labels"], strict=True):
            steps = [*steps, step]
            ids = judge.prompt_ids(tokenizer, question, steps)
            if max_length is not None and len(ids) > max_length:
                out.too_long += 1
                continue
            if tuple(ids) in seen:
                out.duplicates += 1
                continue
            seen.add(tuple(ids))
            out.examples.append({"input_ids": ids, "target": float(label)})
    return out


def freeze_below(model: Any, train_layers: int) -> int:
    """Leaves only the last ``train_layers`` decoder layers and the final norm trainable.

    Returns:
        The number of trainable parameters left.

    Raises:
        ConfigError: The model has no ``model.layers`` list (not a decoder-only transformer), or
            fewer layers than ``train_layers``.
    """
    decoder = getattr(model, "model", None)
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise ConfigError("train_layers", train_layers,
                          f"needs a decoder with model.layers; {type(model).__name__} has none")
    if train_layers > len(layers):
        raise ConfigError("train_layers", train_layers, f"the model has {len(layers)} decoder layers")
    for p in model.parameters():
        p.requires_grad_(False)
    keep = [*layers[len(layers) - train_layers:], getattr(decoder, "norm", None)]
    for module in keep:
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def balance_weights(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Adds ``weight`` to each example so that both classes (``target >= 0.5`` and below)
    carry equal total weight, ``n / (2 n_c)`` each (the mean weight is 1); with one class
    only, every weight is 1.

    Returns:
        ``{"positive": n_pos, "negative": n_neg, "weight_positive", "weight_negative"}``.
    """
    n_pos = sum(1 for e in examples if e["target"] >= 0.5)
    n_neg = len(examples) - n_pos
    w_pos = len(examples) / (2 * n_pos) if n_pos and n_neg else 1.0
    w_neg = len(examples) / (2 * n_neg) if n_pos and n_neg else 1.0
    for e in examples:
        e["weight"] = w_pos if e["target"] >= 0.5 else w_neg
    return {"positive": n_pos, "negative": n_neg, "weight_positive": w_pos, "weight_negative": w_neg}


class JudgeTrainer(ScoreTrainer):
    """Trains the verdict after the judge prompt (the loss of the module docstring).

    Args:
        positive_ids: Token ids read as "correct" (``JudgeFormat.label_ids``).
        negative_ids: Token ids read as "wrong".
        *args, **kwargs: ``transformers.Trainer``'s.
    """

    def __init__(self, *args: Any, positive_ids: Sequence[int], negative_ids: Sequence[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.positive_ids = list(positive_ids)
        self.negative_ids = list(negative_ids)

    def score_loss(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    position_ids=inputs["position_ids"], logits_to_keep=1, use_cache=False)
        logp = out.logits[:, -1, :].float().log_softmax(-1)
        pos = logp[:, self.positive_ids].logsumexp(-1)
        neg = logp[:, self.negative_ids].logsumexp(-1)
        q = inputs["target"].to(logp.dtype)
        losses = -(q * pos + (1.0 - q) * neg)
        weight = inputs.get("weight")
        loss = (losses * weight.to(losses.dtype)).mean() if weight is not None else losses.mean()
        return loss, torch.sigmoid(pos - neg)  # P / (P + N), GenerativePRM's score


def train_prm(config: PRMTrainConfig, *, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Fine-tunes ``config.base`` into a generative PRM; the result is ``OUT/model``.

    Args:
        config: What to train on and how.
        callbacks: Extra Trainer callbacks (progress reporting, tests).

    Returns:
        The result; ``already_done`` when the run folder held a finished run.

    Raises:
        ConfigError: A bad base, dataset, run folder or setting (``lora`` without peft).
    """
    run = start_run("prm", config)
    if run.finished is not None:
        return run.finished
    peft_config = lora_config(config, "CAUSAL_LM")
    judge = config.judge_format()
    reader = HFTokenizer(config.base)
    positive_ids, negative_ids = judge.label_ids(reader)
    rows = load_rows(config.dataset, ("prompt", "completions", "labels"), "prm")
    train_rows, eval_rows = split_rows(rows, config.eval_fraction, config.seed)
    options = {"question_sep": config.question_sep, "step_delimiter": config.step_delimiter,
               "max_length": config.max_length}
    train = judge_examples(train_rows, reader, judge, **options)
    held = judge_examples(eval_rows, reader, judge, **options)
    if not train.examples:
        raise ConfigError("dataset", str(config.dataset), f"gives no judge prompt within max_length={config.max_length}")
    balance = balance_weights(train.examples) if config.balance else None
    model = load_model(AutoModelForCausalLM, config, peft_config)
    if config.train_layers is not None:
        if peft_config is not None:
            raise ConfigError("train_layers", config.train_layers, "is for full fine-tuning; with lora, leave it unset")
        freeze_below(model, config.train_layers)
    trainer = score_trainer(JudgeTrainer, config, run, model, train.examples, held.examples, padding_side="left",
                            callbacks=callbacks, positive_ids=positive_ids, negative_ids=negative_ids)
    counts = {"rows": len(rows), "train_examples": len(train.examples), "eval_examples": len(held.examples),
              "too_long": train.too_long + held.too_long, "duplicates": train.duplicates + held.duplicates,
              "train_positive": sum(1 for e in train.examples if e["target"] >= 0.5)}
    if balance is not None:
        counts.update({"weight_positive": balance["weight_positive"], "weight_negative": balance["weight_negative"]})
    return finish_run(run, trainer, counts)
