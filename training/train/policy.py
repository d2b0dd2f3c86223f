"""Policy trainers: SFT on correct search solutions and DPO on step-level preference pairs.

Both use TRL (``SFTTrainer``, ``DPOTrainer``) on examples tokenized here, so that the policy
is trained on the token sequences it sees when ponder searches with it: the prompt is the
chat template applied to the question (the policy's root prefix,
:meth:`models.tokenizer.HFTokenizer.chat_prompt` with ``system_prompt``), then the solution
prefix as generated, then the completion.

- SFT (ReST-MCTS* spec 02 section 7: rejection-sampled fine-tuning on correct end-leaf
  solutions; the exporter applies the value / length filters). Rows ``prompt`` /
  ``completion``, plain text or conversational (the exporter's ``chat`` rows carry the run's
  system prompt and are used as they are). The completion ends with the EOS token (the
  policy ends its reply there); the loss is on the completion only.
- DPO (step-level, as Step-DPO): rows ``prompt`` (question + prefix), ``chosen``,
  ``rejected`` (sibling steps). No EOS is appended: a step is not the end of a reply (TRL
  appends one to plain-text pairs, which would teach the policy to stop after every step).
  The ``margin`` column is not used by the DPO loss.

``prompt_style="plain"`` keeps the exporters' plain text as the whole prompt (a policy run
without a chat template). Examples longer than ``max_length`` are left out and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field
from transformers import AutoModelForCausalLM, TrainerCallback
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from models.tokenizer import HFTokenizer
from search.protocols import ConfigError
from training.train.common import TrainResult, finish_run, load_model, lora_config, start_run, training_arguments
from training.train.config import TrainConfig
from training.train.data import question_and_prefix, split_examples


class PolicyTrainConfig(TrainConfig):
    """Settings of the policy trainers (SFT and DPO)."""

    prompt_style: Literal["chat", "plain"] = Field(
        "chat", description="chat: the question in the chat template, as the policy is prompted; plain: the prompt text as is.")
    system_prompt: str | None = Field(
        None, description="System turn of chat prompts built from plain-text rows (the run's model.system_prompt).")


class SFTTrainConfig(PolicyTrainConfig):
    """Policy SFT on correct solutions."""


class DPOTrainConfig(PolicyTrainConfig):
    """Step-level DPO."""

    learning_rate: float = Field(5e-6, gt=0, description="Peak AdamW learning rate (linear decay).")
    beta: float = Field(0.1, gt=0, description="DPO's beta: strength of the KL tie to the reference (the base).")


def _ids(tokenizer: HFTokenizer, text: str) -> list[int]:
    return tokenizer.encode(text) if text else []


def prompt_ids(tokenizer: HFTokenizer, prompt: Any, question: str, prefix: str,
               config: PolicyTrainConfig) -> list[int]:
    """Token ids of a row's prompt as the policy sees it.

    Args:
        tokenizer: The policy's tokenizer.
        prompt: The row's ``prompt``: text, or chat messages (used as they are).
        question: The question of a text prompt (``question_and_prefix``).
        prefix: The solution prefix of a text prompt, as generated.
        config: ``prompt_style`` and ``system_prompt``.
    """
    if isinstance(prompt, list):
        system = next((m["content"] for m in prompt if m["role"] == "system"), None)
        user = [m["content"] for m in prompt if m["role"] == "user"]
        if len(user) != 1 or len(prompt) != len(user) + (system is not None):
            raise ConfigError("dataset", prompt, "a chat prompt must be an optional system turn and one user turn")
        return tokenizer.chat_prompt(user[0], system)
    if config.prompt_style == "plain":
        return _ids(tokenizer, prompt)
    return tokenizer.chat_prompt(question, config.system_prompt) + _ids(tokenizer, prefix)


def _text(completion: Any) -> str:
    """A completion's text: the string, or the content of its assistant message(s)."""
    if isinstance(completion, list):
        return "".join(m["content"] for m in completion if m["role"] == "assistant")
    return str(completion)


def sft_examples(rows: Sequence[dict[str, Any]], tokenizer: HFTokenizer, config: PolicyTrainConfig
                 ) -> tuple[list[dict[str, Any]], int]:
    """``({"input_ids", "labels"} per row, left out as too long)``; labels are -100 on the prompt."""
    if tokenizer.eos_token_id is None:
        raise ConfigError("base", str(config.base), "the tokenizer has no EOS token to end a solution with")
    out, too_long = [], 0
    for row, (question, prefix) in zip(rows, _split(rows, config), strict=True):
        prompt = prompt_ids(tokenizer, row["prompt"], question, prefix, config)
        completion = _ids(tokenizer, _text(row["completion"])) + [tokenizer.eos_token_id]
        if len(prompt) + len(completion) > config.max_length:
            too_long += 1
            continue
        out.append({"input_ids": prompt + completion, "labels": [-100] * len(prompt) + completion})
    return out, too_long


def dpo_examples(rows: Sequence[dict[str, Any]], tokenizer: HFTokenizer, config: PolicyTrainConfig
                 ) -> tuple[list[dict[str, Any]], int]:
    """``({"prompt_ids", "chosen_ids", "rejected_ids"} per row, left out as too long)``."""
    out, too_long = [], 0
    for row, (question, prefix) in zip(rows, _split(rows, config), strict=True):
        prompt = prompt_ids(tokenizer, row["prompt"], question, prefix, config)
        chosen, rejected = _ids(tokenizer, _text(row["chosen"])), _ids(tokenizer, _text(row["rejected"]))
        if not chosen or not rejected:
            continue
        if len(prompt) + max(len(chosen), len(rejected)) > config.max_length:
            too_long += 1
            continue
        out.append({"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected})
    return out, too_long


def _split(rows: Sequence[dict[str, Any]], config: PolicyTrainConfig) -> list[tuple[str, str]]:
    if all(isinstance(r["prompt"], list) for r in rows):
        return [("", "")] * len(rows)
    return question_and_prefix(rows, config.question_sep)


class _StepDPOTrainer(DPOTrainer):
    """TRL's DPOTrainer on examples tokenized by :func:`dpo_examples` (TRL's own preparation
    would append EOS to every step)."""

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        return dataset


def train_sft(config: SFTTrainConfig, *, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Supervised fine-tuning of ``config.base`` on solutions; the result is ``OUT/model``.

    Raises:
        ConfigError: A bad base, dataset, run folder or setting (``lora`` without peft).
    """
    run = start_run("sft", config)
    if run.finished is not None:
        return run.finished
    peft_config = lora_config(config, "CAUSAL_LM")
    reader = HFTokenizer(config.base)
    data = split_examples(config, ("prompt", "completion"), "sft",
                          lambda rows: sft_examples(rows, reader, config))
    args = SFTConfig(**training_arguments(config, run.layout, bool(data.held)), max_length=config.max_length,
                     dataset_num_proc=None, packing=False)
    trainer = SFTTrainer(model=load_model(AutoModelForCausalLM, config), args=args, **data.datasets(),
                         processing_class=run.tokenizer, peft_config=peft_config, callbacks=list(callbacks))
    return finish_run(run, trainer, data.counts)


def train_dpo(config: DPOTrainConfig, *, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Step-level DPO of ``config.base`` against itself as the reference; result ``OUT/model``.

    With ``lora`` the reference is the base with the adapters switched off (no second copy).

    Raises:
        ConfigError: A bad base, dataset, run folder or setting (``lora`` without peft).
    """
    run = start_run("dpo", config)
    if run.finished is not None:
        return run.finished
    peft_config = lora_config(config, "CAUSAL_LM")
    reader = HFTokenizer(config.base)
    data = split_examples(config, ("prompt", "chosen", "rejected"), "dpo",
                          lambda rows: dpo_examples(rows, reader, config))
    args = DPOConfig(**training_arguments(config, run.layout, bool(data.held)), max_length=config.max_length,
                     beta=config.beta, dataset_num_proc=None)
    reference = None if peft_config is not None else load_model(AutoModelForCausalLM, config)
    trainer = _StepDPOTrainer(model=load_model(AutoModelForCausalLM, config), ref_model=reference, args=args,
                              **data.datasets(), processing_class=run.tokenizer, peft_config=peft_config,
                              callbacks=list(callbacks))
    return finish_run(run, trainer, data.counts)

