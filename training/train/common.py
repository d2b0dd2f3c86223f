"""What every trainer shares: the run folder, its opening and closing, the model in, the checkpoint out.

A run folder (``config.out``) holds::

    OUT/train_config.json   the stage and config of the run (a rerun must match it)
    OUT/checkpoints/        the Hugging Face Trainer's own checkpoint-N folders (resume points;
                            removed once the run is done unless ``keep_checkpoints``)
    OUT/model/              the final checkpoint: weights, tokenizer, chat template
    OUT/metrics.json        the Trainer's log history, eval metrics before and after, counts
    OUT/done.json           written last: the run is finished

A rerun with the same out dir resumes from the newest ``checkpoint-N`` (the Trainer restores
weights, optimizer, scheduler, RNG and the data position); once ``done.json`` is there it is a
no-op that says so. ``resume=False`` starts afresh, removing those five entries first.

CPU or CUDA is the Trainer's choice (CUDA when present); ``dtype="auto"`` loads the weights in
bfloat16 on a GPU that supports it and in float32 on a CPU. The final checkpoint is written in
the base checkpoint's dtype and must pass :func:`models.checkpoint.structure_problem`, the
check a checkpoint that ``ponder serve`` hands to vLLM passes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from models.checkpoint import chat_template, read_json, structure_problem
from models.embedded import hf_offline
from search.protocols import ConfigError, PonderError
from training.train.config import BaseTrainConfig, Stage, TrainConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Trainer

PEFT_HINT = "pip install peft==0.21.2"


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """The files of one run folder (see the module docstring)."""

    out: Path

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    @property
    def model(self) -> Path:
        return self.out / "model"

    @property
    def metrics(self) -> Path:
        return self.out / "metrics.json"

    @property
    def config(self) -> Path:
        return self.out / "train_config.json"

    @property
    def done(self) -> Path:
        return self.out / "done.json"


@dataclasses.dataclass
class TrainResult:
    """What a trainer did.

    Attributes:
        stage: ``prm``, ``sft``, ``dpo``, ``value``, or an on-policy recipe (``grpo``, ``treepo``, ``rover``).
        model_dir: The final checkpoint (``OUT/model``).
        metrics: The contents of ``OUT/metrics.json``.
        already_done: The run had finished before: nothing was trained this time.
        resumed_from: The checkpoint training resumed from, if any.
    """

    stage: Stage
    model_dir: Path
    metrics: dict[str, Any]
    already_done: bool = False
    resumed_from: Path | None = None


@dataclasses.dataclass
class Run:
    """A run folder opened for training: where to resume from, or the finished result.

    Attributes:
        tokenizer: The base's tokenizer with a pad token (:func:`start_run` loads it unless
            the run is finished); trained with the model and saved beside it.
    """

    stage: Stage
    config: BaseTrainConfig
    layout: RunLayout
    resume_from: Path | None = None
    finished: TrainResult | None = None
    tokenizer: Any = None


def _config_record(stage: Stage, config: BaseTrainConfig) -> dict[str, Any]:
    record = config.model_dump(mode="json", exclude={"resume", "keep_checkpoints"})
    return {"stage": stage, **record}


def open_run(stage: Stage, config: BaseTrainConfig) -> Run:
    """Checks the base and the run folder; finds the checkpoint to resume from.

    Raises:
        ConfigError: The base is not a checkpoint with a chat template, the run would
            overwrite the dataset or the base, or the run folder holds a run of another stage
            or config (choose another ``out``, or ``resume=False``).
    """
    layout = RunLayout(config.out)
    for field in ("dataset", "base"):  # the on-policy trainers (training.rl) have no dataset
        path = getattr(config, field, None)
        if path is None:
            continue
        if path == config.out or any(p == path or p in path.parents for p in (layout.model, layout.checkpoints)):
            raise ConfigError("out", str(config.out), f"would overwrite the {field}; choose another run folder")
    if not (config.base / "config.json").is_file():
        raise ConfigError("base", str(config.base), "is not a Hugging Face checkpoint folder (no config.json)")
    if chat_template(config.base) is None:
        raise ConfigError("base", str(config.base), "has no chat template; the served checkpoint needs one")
    if not config.resume:
        for path in (layout.done, layout.metrics, layout.config):
            path.unlink(missing_ok=True)
        for path in (layout.checkpoints, layout.model):
            shutil.rmtree(path, ignore_errors=True)
    record = _config_record(stage, config)
    previous = read_json(layout.config)
    if previous is not None and previous != record:
        changed = sorted(k for k in record.keys() | previous.keys() if record.get(k) != previous.get(k))
        raise ConfigError("out", str(config.out), f"holds a run with other settings ({', '.join(changed)}); "
                          "use another out dir, or resume=False (--no-resume) to start afresh")
    run = Run(stage, config, layout)
    done = read_json(layout.done)
    if isinstance(done, dict) and structure_problem(layout.model) is None:
        run.finished = TrainResult(stage, layout.model, read_json(layout.metrics) or {}, already_done=True)
        return run
    layout.out.mkdir(parents=True, exist_ok=True)
    write_json(layout.config, record)
    if layout.checkpoints.is_dir():
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(layout.checkpoints))
        run.resume_from = Path(last) if last else None
    return run


def start_run(stage: Stage, config: BaseTrainConfig) -> Run:
    """Every trainer's opening: :func:`open_run`, then, unless the run is finished, seeds
    torch, numpy and Python's ``random`` with ``config.seed`` (before any model is built) and
    loads the base's tokenizer into ``run.tokenizer``.

    Raises:
        ConfigError: As :func:`open_run`.
    """
    run = open_run(stage, config)
    if run.finished is None:
        from transformers import set_seed

        set_seed(config.seed)
        run.tokenizer = load_tokenizer(config.base)
    return run


def load_tokenizer(base: Path) -> PreTrainedTokenizerBase:
    """The base's Hugging Face tokenizer (offline), with a pad token (the EOS token if none)."""
    from transformers import AutoTokenizer

    with hf_offline():
        tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def training_device() -> torch.device:
    """Where a hand-written loop trains: the GPU when torch sees one (HF Trainers pick it themselves)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def weights_dtype(config: BaseTrainConfig) -> torch.dtype:
    """The dtype of the weights while training (``config.dtype``; auto: bf16 on a GPU with it)."""
    if config.dtype == "auto":
        gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if gpu_bf16 else torch.float32
    return getattr(torch, config.dtype)


def base_dtype(base: Path) -> torch.dtype | None:
    """The dtype the base checkpoint is stored in (its config's ``dtype``), if it says."""
    config = read_json(base / "config.json") or {}
    name = config.get("dtype") or config.get("torch_dtype")
    value = getattr(torch, name, None) if isinstance(name, str) else None
    return value if isinstance(value, torch.dtype) else None


def load_model(auto_class: Any, config: BaseTrainConfig, peft_config: Any = None, *, path: Path | None = None,
               **kwargs: Any) -> Any:
    """``auto_class.from_pretrained(path or config.base)`` offline in :func:`weights_dtype`, wrapped
    in LoRA adapters when ``peft_config`` is given (TRL's trainers wrap it themselves)."""
    with hf_offline():
        model = auto_class.from_pretrained(str(path or config.base), dtype=weights_dtype(config),
                                           local_files_only=True, **kwargs)
    if peft_config is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft_config)
        if config.gradient_checkpointing:
            model.enable_input_require_grads()
    return model


def lora_config(config: TrainConfig, task_type: str) -> Any:
    """A ``peft.LoraConfig`` on all linear layers, or None without ``config.lora``.

    Raises:
        ConfigError: ``lora`` is set and peft is not installed.
    """
    if not config.lora:
        return None
    try:
        import peft
    except ImportError:
        raise ConfigError("lora", True, f"needs the peft package ({PEFT_HINT})") from None
    return peft.LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                           target_modules="all-linear", task_type=task_type)


def training_arguments(config: TrainConfig, layout: RunLayout, has_eval: bool) -> dict[str, Any]:
    """Keyword arguments of ``transformers.TrainingArguments`` (and TRL's configs) for a run."""
    return {
        "output_dir": str(layout.checkpoints),
        "num_train_epochs": config.num_epochs,
        "max_steps": config.max_steps or -1,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "learning_rate": config.learning_rate,
        "warmup_steps": config.warmup_ratio,  # < 1: a share of the steps
        "weight_decay": config.weight_decay,
        "lr_scheduler_type": "linear",
        "logging_steps": config.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": config.save_steps,
        "seed": config.seed,
        "data_seed": config.seed,
        "bf16": weights_dtype(config) == torch.bfloat16,
        "gradient_checkpointing": config.gradient_checkpointing,
        "report_to": "none",
        "disable_tqdm": False,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": torch.cuda.is_available(),
    }


def finish_run(run: Run, trainer: Trainer, counts: dict[str, int],
               unwrap: Callable[[Any], Any] | None = None) -> TrainResult:
    """Trains (resuming where the run folder says), evaluates, then :func:`close_run`.

    Args:
        run: The run :func:`start_run` opened (its tokenizer is saved with the weights).
        trainer: A ready Trainer (TRL's or a subclass of transformers').
        counts: Example counts for ``metrics.json`` (train, eval, left out).
        unwrap: Turns ``trainer.model`` into the model to save; default: merge LoRA adapters
            into their base when there are any.
    """
    has_eval = trainer.eval_dataset is not None
    started = time.perf_counter()
    before = trainer.evaluate(metric_key_prefix="eval") if has_eval and run.resume_from is None else None
    output = trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
    after = trainer.evaluate(metric_key_prefix="eval") if has_eval else None
    model = (unwrap or merge_adapters)(trainer.model)
    return close_run(run, model, {
        "stage": run.stage,
        "train": output.metrics,
        "eval_before": before,
        "eval_after": after,
        "counts": counts,
        "global_step": trainer.state.global_step,
        "resumed_from": str(run.resume_from) if run.resume_from else None,
        "wall_seconds": time.perf_counter() - started,
        "log_history": trainer.state.log_history,
    })


def close_run(run: Run, model: Any, metrics: dict[str, Any]) -> TrainResult:
    """Every trainer's ending: writes the final checkpoint (in the base's dtype, with
    ``run.tokenizer``), ``metrics.json`` and, last, ``done.json``; removes the resume points
    unless ``keep_checkpoints``.

    Raises:
        PonderError: The final checkpoint fails the served-checkpoint checks.
    """
    write_checkpoint(model, run.tokenizer, run.layout.model, base_dtype(run.config.base))
    write_json(run.layout.metrics, metrics)
    write_json(run.layout.done, {"stage": run.stage, "model": str(run.layout.model),
                                 "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    if not run.config.keep_checkpoints:
        shutil.rmtree(run.layout.checkpoints, ignore_errors=True)
    return TrainResult(run.stage, run.layout.model, metrics, resumed_from=run.resume_from)


def merge_adapters(model: Any) -> Any:
    """The model with its LoRA adapters merged in (the model itself when it has none)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def write_checkpoint(model: Any, tokenizer: PreTrainedTokenizerBase, target: Path,
                     dtype: torch.dtype | None = None, *, extra: Callable[[Path], None] | None = None) -> None:
    """Saves weights (safetensors, in ``dtype`` when given) and tokenizer (with its chat
    template) to ``target``, built aside and swapped in, after the structural checks that
    a served checkpoint must pass: a present ``target`` is whole.

    Args:
        extra: Writes more files into the folder being built (an optimizer state, a record).

    Raises:
        PonderError: The written checkpoint fails :func:`models.checkpoint.structure_problem`.
    """
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    problem = structure_problem(staging)
    if problem:
        raise PonderError(f"the checkpoint written to {staging} is unusable: {problem}")
    if extra is not None:
        extra(staging)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    """Writes ``data`` as indented JSON, atomically (written aside, then renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)
