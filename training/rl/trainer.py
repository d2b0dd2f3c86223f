"""The on-policy trainer: rounds of sample -> verify -> advantages / targets -> update -> save.

Round r (1..rounds): the policy of round r-1 (the base for r = 1) is served and sampled by
the ``sampler`` (:data:`training.rl.rollout.Sampler`, e.g. ``ponder.rl.engine_sampler``:
vLLM through ponder's engine, token-id prompts, its fault rules); the rollouts are verified
and saved; pi_old's per-token log-probabilities are computed ONCE for the round's batch in
torch; then ``ppo_epochs`` passes of mini-batch AdamW steps on the recipe's loss
(:mod:`training.rl.losses`); the weights are saved as a Hugging Face checkpoint (the next
round serves it).

Why a small torch loop and not TRL (1.16): ``GRPOTrainer`` computes its advantages itself
from reward functions over groups of a fixed ``num_generations`` (its experimental
``rollout_func`` replaces only generation), so it takes neither TreePO's tree advantages
over a varying number of trajectories per prompt nor ROVER's loss, which needs the
vocabulary mean of the log-softmax at every position; and its vLLM path is TRL's own server
with weight sync, not the checkpoint-per-round serving of ponder's engine. The loop here is
~100 lines of that missing middle and reuses the run folder and checkpoint writer of
:mod:`training.train.common`.

Run folder (``config.out``)::

    OUT/train_config.json               the config (a rerun must match it)
    OUT/rounds/round-<r>/rollouts.jsonl  round r's verified samples (saved before the update)
    OUT/rounds/round-<r>/metrics.json    round r's statistics (spec 06 §5, spec 03 §8)
    OUT/checkpoints/checkpoint-<r>/      round r's weights (training dtype), tokenizer,
                                         optimizer.pt; written aside and renamed: present = whole
    OUT/model/                          the final checkpoint (the base's dtype)
    OUT/metrics.json, OUT/done.json      written last

A killed run resumes at the first round without a checkpoint, from the previous round's
weights and optimizer state, reusing that round's saved rollouts when they exist; mini-batch
order is seeded by (seed, round, epoch), so a resumed round repeats the killed one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from search.protocols import PonderError, Problem
from training.rl.batch import Batch, build_batch
from training.rl.config import RLTrainConfig
from training.rl.losses import clipped_pg_loss, masked_entropy, rover_loss, token_stats
from training.rl.rollout import Rollout, Sampler, groups, load_rollouts, save_rollouts
from training.train.common import (
    TrainResult,
    close_run,
    load_model,
    start_run,
    training_device,
    weights_dtype,
    write_checkpoint,
    write_json,
)
from verifiers.tasks import TaskSet, load_tasks

log = logging.getLogger(__name__)
StepFn = Callable[[int, int, dict[str, float]], None]
"""``(round, optimizer step, metrics)`` after each optimizer step (progress, tests)."""


def round_prompts(problems: Sequence[Problem], config: RLTrainConfig, r: int) -> list[Problem]:
    """Round r's prompts: a seeded shuffle of the task set, ``prompts_per_round`` at a time, cycling."""
    order = list(problems)
    random.Random(config.seed).shuffle(order)
    start = (r - 1) * config.prompts_per_round
    return [order[(start + i) % len(order)] for i in range(min(config.prompts_per_round, len(order)))]


def finished_rounds(checkpoints: Path) -> list[int]:
    """Rounds with a whole checkpoint, ascending."""
    if not checkpoints.is_dir():
        return []
    found = []
    for d in checkpoints.glob("checkpoint-*"):
        suffix = d.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (d / "round.json").is_file():
            found.append(int(suffix))
    return sorted(found)


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _forward(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    logp, mean_logp = token_stats(logits, batch.input_ids[:, 1:])
    return logp, mean_logp, logits


def old_stats(model: Any, batch: Batch, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
    """pi_old's taken-token log-probabilities and vocabulary-mean log-softmax for the whole
    batch, computed once (no gradient), kept on the CPU beside the batch."""
    logp = torch.zeros_like(batch.mask)
    mean = torch.zeros_like(batch.mask)
    with torch.no_grad():
        for start in range(0, len(batch), micro):
            rows = list(range(start, min(start + micro, len(batch))))
            part = batch.rows(rows).to(_device(model))
            lp, mp, _ = _forward(model, part)
            width = lp.shape[1]
            logp[rows, :width], mean[rows, :width] = lp.cpu(), mp.cpu()
    return logp, mean


def micro_loss(model: Any, config: RLTrainConfig, part: Batch, old_logp: torch.Tensor, old_mean: torch.Tensor,
               normaliser: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The recipe's loss on one micro-batch (on the model's device), normalised by the optimizer
    step's token count."""
    device = _device(model)
    part = part.to(device)
    logp, mean_logp, logits = _forward(model, part)
    width = logp.shape[1]
    old_logp, old_mean = old_logp[:, :width].to(device), old_mean[:, :width].to(device)
    if config.recipe == "rover":
        if config.rover_target == "tree":
            loss, stats = rover_loss(logp, old_logp, part.mask, targets=part.signal, rho=config.rho,
                                     beta=config.beta, normaliser=normaliser)
        else:
            loss, stats = rover_loss(logp, old_logp, part.mask, centred_rewards=part.centred, mean_logp=mean_logp,
                                     old_mean_logp=old_mean, rho=config.rho, beta=config.beta, normaliser=normaliser)
    else:
        loss, stats = clipped_pg_loss(logp, old_logp, part.signal, part.mask, eps_low=config.eps_low,
                                      eps_high=config.eps_high, clip_ratio_c=config.clip_ratio_c, normaliser=normaliser)
    stats["entropy"] = masked_entropy(logits, part.mask)
    return loss, stats


def update(model: Any, optimizer: torch.optim.Optimizer, batch: Batch, config: RLTrainConfig, r: int,
           on_step: StepFn | None = None, step0: int = 0) -> list[dict[str, float]]:
    """``ppo_epochs`` passes of mini-batch steps over the batch; returns each step's metrics."""
    model.eval()  # no dropout: pi_theta == pi_old at the first step, as the losses assume
    old_logp, old_mean = old_stats(model, batch, config.micro_batch_size)
    steps = []
    for epoch in range(config.ppo_epochs):
        order = list(range(len(batch)))
        random.Random(f"{config.seed}/{r}/{epoch}").shuffle(order)
        for start in range(0, len(order), config.mini_batch_size):
            mini = order[start: start + config.mini_batch_size]
            tokens = float(batch.mask[mini].sum())
            optimizer.zero_grad(set_to_none=True)
            parts: list[dict[str, float]] = []
            total = 0.0
            for m in range(0, len(mini), config.micro_batch_size):
                rows = mini[m: m + config.micro_batch_size]
                part = batch.rows(rows)
                loss, stats = micro_loss(model, config, part, old_logp[rows], old_mean[rows], max(tokens, 1.0))
                loss.backward()
                total += float(loss.detach())
                parts.append({**stats, "tokens": float(part.mask.sum())})
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            metrics = {"loss": total, "grad_norm": float(grad_norm), "epoch": epoch, **_merge(parts)}
            steps.append(metrics)
            log.info("round %d step %d: %s", r, step0 + len(steps),
                     {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
            if on_step is not None:
                on_step(r, step0 + len(steps), metrics)
    return steps


def _merge(parts: list[dict[str, float]]) -> dict[str, float]:
    """Token-weighted means of the micro-batches' stats (min / max: over them)."""
    weight = sum(p["tokens"] for p in parts) or 1.0
    out: dict[str, float] = {}
    for key in parts[0] if parts else ():
        if key == "tokens":
            continue
        values = [p[key] for p in parts if key in p]
        if key.endswith("_min"):
            out[key] = min(values)
        elif key.endswith("_max"):
            out[key] = max(values)
        else:
            out[key] = sum(p[key] * p["tokens"] for p in parts if key in p) / weight
    return out


def round_metrics(rollouts: Sequence[Rollout], batch: Batch) -> dict[str, Any]:
    """Per prompt r_i and r~_i (spec 06 §5), trajectories per prompt (spec 03 §8), finish reasons."""
    per_prompt = {}
    for pid, members in groups(rollouts).items():
        rewards = [rollouts[i].reward for i in members]
        mean = sum(rewards) / len(rewards)
        per_prompt[pid] = {"rewards": rewards, "centred": [r - mean for r in rewards]}
    sizes = [len(m) for m in groups(rollouts).values()]
    return {
        "rollouts": len(rollouts), "trained_rollouts": len(batch), "truncated": batch.truncated,
        "reward_mean": sum(r.reward for r in rollouts) / max(len(rollouts), 1),
        "response_tokens_mean": sum(len(r.response_ids) for r in rollouts) / max(len(rollouts), 1),
        "trajectories_per_prompt": {"avg": sum(sizes) / max(len(sizes), 1), "min": min(sizes, default=0),
                                    "max": max(sizes, default=0)},
        "finish_reasons": dict(Counter(r.finish_reason for r in rollouts)),
        "per_prompt": per_prompt,
    }


def save_round(model: Any, tokenizer: Any, optimizer: torch.optim.Optimizer, target: Path,
               record: dict[str, Any]) -> None:
    """Round checkpoint: weights (training dtype), tokenizer, optimizer state and
    ``round.json``, built aside and renamed into place (a present ``checkpoint-<r>`` is whole)."""

    def extra(staging: Path) -> None:
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        write_json(staging / "round.json", record)

    write_checkpoint(model, tokenizer, target, extra=extra)


def train_rl(config: RLTrainConfig, sampler: Sampler, *, tasks: TaskSet | None = None,
             on_step: StepFn | None = None) -> TrainResult:
    """Runs (or resumes) the rounds; the result is ``OUT/model``.

    Args:
        config: The run.
        sampler: Serves a checkpoint and returns its verified rollouts for the prompts.
        tasks: The training task set (default: loaded from ``config.tasks``).
        on_step: Called after every optimizer step.

    Raises:
        ConfigError: A bad base or run folder, or a recipe / sampler mismatch.
    """
    run = start_run(config.recipe, config)
    if run.finished is not None:
        return run.finished
    layout, tokenizer = run.layout, run.tokenizer
    tasks = tasks or load_tasks(config.tasks)
    last = max((r for r in finished_rounds(layout.checkpoints) if r <= config.rounds), default=0)
    run.resume_from = layout.checkpoints / f"checkpoint-{last}" if last else None
    policy = run.resume_from or config.base
    from transformers import AutoModelForCausalLM

    model = load_model(AutoModelForCausalLM, config, path=policy)
    model.to(training_device())  # a GPU when there is one; the checkpoints are written from wherever it is
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    if last:
        optimizer.load_state_dict(torch.load(policy / "optimizer.pt", weights_only=True))
    started = time.perf_counter()
    for r in range(last + 1, config.rounds + 1):
        round_dir = layout.out / "rounds" / f"round-{r}"
        round_dir.mkdir(parents=True, exist_ok=True)
        saved = round_dir / "rollouts.jsonl"
        t0 = time.perf_counter()
        if saved.exists():
            rollouts = load_rollouts(saved)
        else:
            rollouts = asyncio.run(sampler(Path(policy), round_prompts(tasks.problems, config, r), r))
            save_rollouts(saved, rollouts)
        t1 = time.perf_counter()
        if not rollouts:
            raise PonderError(f"round {r}: the sampler returned no rollouts")
        batch = build_batch(rollouts, config, tokenizer.pad_token_id)
        steps = update(model, optimizer, batch, config, r, on_step) if len(batch) else []
        metrics = {"round": r, "sample_seconds": round(t1 - t0, 2), "update_seconds": round(time.perf_counter() - t1, 2),
                   **round_metrics(rollouts, batch), "steps": steps}
        write_json(round_dir / "metrics.json", metrics)
        target = layout.checkpoints / f"checkpoint-{r}"
        save_round(model, tokenizer, optimizer, target, {"round": r, "policy": str(policy)})
        if not config.keep_checkpoints and policy != config.base:
            shutil.rmtree(policy, ignore_errors=True)
        policy = target
        log.info("round %d done: reward %.3f, %d trained rollouts, %d steps", r, metrics["reward_mean"],
                 len(batch), len(steps))
    rounds = [json.loads((layout.out / "rounds" / f"round-{r}" / "metrics.json").read_text())
              for r in range(1, config.rounds + 1)]
    return close_run(run, model, {
        "stage": config.recipe, "rounds": [{k: v for k, v in m.items() if k != "per_prompt"} for m in rounds],
        "resumed_from_round": last or None, "wall_seconds": time.perf_counter() - started,
        "dtype": str(weights_dtype(config))})


__all__ = ["finished_rounds", "round_prompts", "train_rl"]
