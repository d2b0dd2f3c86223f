"""`ponder train`: one training stage on an exported dataset, or on-policy RL rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ponder.cli.common import console, fail
from search.protocols import PonderError

RL_RECIPES = ("grpo", "treepo", "rover")


def train(
    stage: Annotated[str, typer.Argument(help="prm (generative judge), sft (correct solutions), dpo (step pairs), value (regression head); "
                                            "on-policy: grpo, treepo, rover.")],
    dataset: Annotated[Path, typer.Argument(help="A dataset folder written by `ponder export` / `ponder label`; for grpo / treepo / "
                                              "rover a YAML of training.rl.RLTrainConfig fields (tasks, n, ...; see configs/rl/small.yaml).")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints/, model/ (the result), metrics.json, done.json.")],
    base: Annotated[Optional[Path], typer.Option(help="HF checkpoint to start from; default: the embedded model.")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Passes over the data.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Optimizer steps (overrides --epochs).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Examples per forward pass.")] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help="Forward passes per optimizer step.")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Longest example in tokens (longer ones are left out).")] = None,
    eval_fraction: Annotated[Optional[float], typer.Option(help="Share of problems held out for evaluation.")] = None,
    save_steps: Annotated[Optional[int], typer.Option(help="Steps between resumable checkpoints and evaluations.")] = None,
    logging_steps: Annotated[Optional[int], typer.Option(help="Steps between logged losses.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of init, data order and eval split.")] = None,
    lora: Annotated[bool, typer.Option(help="Train LoRA adapters (merged into the result).")] = False,
    lora_rank: Annotated[Optional[int], typer.Option(help="LoRA rank.")] = None,
    beta: Annotated[Optional[float], typer.Option(help="dpo: strength of the tie to the reference.")] = None,
    system_prompt: Annotated[Optional[str], typer.Option(help="sft / dpo: system turn of prompts built from plain-text rows.")] = None,
    train_layers: Annotated[Optional[int], typer.Option(help="prm: train only the last N decoder layers and the final norm (minutes on CPU).")] = None,
    balance: Annotated[Optional[bool], typer.Option("--balance/--no-balance", help="prm: right and wrong steps weigh the same in the loss (default on).")] = None,
    resume: Annotated[bool, typer.Option(help="Resume from OUT's last checkpoint; --no-resume starts afresh.")] = True,
    rounds: Annotated[Optional[int], typer.Option(help="grpo / treepo / rover: sample -> update rounds.")] = None,
) -> None:
    """Train one stage on an exported dataset; the checkpoint lands in OUT/model (servable
    with `ponder serve OUT/model`; a value model needs vLLM's --runner pooling).

    Re-running the same command resumes from the last checkpoint, or says it is done.
    """
    from training.train import make_config, run_stage

    if stage in RL_RECIPES:
        _train_rl(stage, dataset, out, base, {"learning_rate": lr, "seed": seed, "rounds": rounds,
                                              "system_prompt": system_prompt, "resume": resume})
        return
    given = {"num_epochs": epochs, "max_steps": max_steps, "learning_rate": lr, "batch_size": batch_size,
             "gradient_accumulation_steps": grad_accum, "max_length": max_length, "eval_fraction": eval_fraction,
             "save_steps": save_steps, "logging_steps": logging_steps, "seed": seed, "lora_rank": lora_rank,
             "beta": beta, "system_prompt": system_prompt, "train_layers": train_layers, "balance": balance}
    try:
        config = make_config(stage, dataset=dataset, base=base or _embedded(), out=out, lora=lora, resume=resume,
                             **{k: v for k, v in given.items() if v is not None})
        console.print(f"train {stage}: {config.dataset} on {config.base} -> {config.out}")
        result = run_stage(stage, config)
    except (PonderError, KeyboardInterrupt) as err:
        fail(err, f"re-run the same command to resume from the last checkpoint in {out}")
    if result.already_done:
        console.print(f"already trained: {result.model_dir} (--no-resume to train again)")
        return
    if result.resumed_from:
        console.print(f"resumed from {result.resumed_from}")
    after = result.metrics.get("eval_after") or {}
    shown = {k: round(v, 4) for k, v in after.items() if isinstance(v, float) and "runtime" not in k and "per_second" not in k}
    console.print(f"model: {result.model_dir}\nmetrics: {out / 'metrics.json'}   eval: {shown or 'none'}")


def _train_rl(recipe: str, config_path: Path, out: Path, base: Optional[Path], given: dict[str, Any]) -> None:
    """`ponder train grpo|treepo|rover RL.yaml --out OUT`: the on-policy trainer with ponder's
    engine as its sampler (:mod:`ponder.rl`), one log line per optimizer step and round."""
    import logging

    from ponder.rl import rl_train_config, train_policy_rl

    progress = logging.getLogger("training.rl")
    if not progress.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    try:
        config = rl_train_config(recipe, config_path, base or _embedded(), out, given)
        console.print(f"train {recipe}: {config.rounds} rounds of {config.prompts_per_round} prompts x {config.n} "
                      f"on {config.base} -> {config.out}")
        result = train_policy_rl(config)
    except (PonderError, KeyboardInterrupt) as err:
        fail(err, f"re-run the same command to resume from the last round in {out}")
    if result.already_done:
        console.print(f"already trained: {result.model_dir} (--no-resume to train again)")
        return
    for r in result.metrics["rounds"]:
        console.print(f"round {r['round']}: reward {r['reward_mean']:.3f}, {r['trained_rollouts']} trained rollouts, "
                      f"sample {r['sample_seconds']:.0f} s, update {r['update_seconds']:.0f} s")
    console.print(f"model: {result.model_dir}\nmetrics: {out / 'metrics.json'}")


def _embedded() -> Path:
    from models.embedded import embedded_checkpoint

    return embedded_checkpoint()
