"""`python -m benchmarks.rl`: on-policy training evidence (issues 12 §4, 15 §2).

For one recipe: held-out greedy accuracy, pass@k (k = 1, 4, 8, the unbiased estimator over
n = 8 samples) and distinct correct solutions per problem, for the base policy (cached in
OUT/base_eval.json, shared by the recipes) and after ``ponder train <recipe>`` with the same
config (same prompts, samples and steps); wall times. Writes OUT/<recipe>/evidence.json.

    python -m benchmarks.rl --recipe rover --config configs/rl/small.yaml --out runs/rl-evidence
    python -m benchmarks.rl --recipe treepo ... --until 1 --threads 1   # round 1 only, evaluated; resumable
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from ponder.config import DEFAULT_SYSTEM_PROMPT, ModelConfig, read_yaml, validated
from ponder.loop.metrics import pass_at_k
from training.rl.rollout import sample_independent
from verifiers.tasks import TaskSet, load_tasks


async def evaluate(checkpoint: Path, tasks: TaskSet, *, n: int = 8, max_tokens: int = 96, temperature: float = 1.0,
                   system_prompt: str | None = DEFAULT_SYSTEM_PROMPT, seed: int | None = None) -> dict[str, Any]:
    """Greedy accuracy, pass@{1,4,8} over ``n`` samples and distinct correct solutions per problem."""
    from ponder.engine import open_engine

    start = time.perf_counter()
    async with open_engine(ModelConfig(checkpoint=str(checkpoint), system_prompt=system_prompt)) as engine:
        greedy = await sample_independent(engine.client, engine.tokenizer, tasks.problems, tasks, n=1,
                                          max_tokens=max_tokens, temperature=0.0, system_prompt=system_prompt)
        sampled = await sample_independent(engine.client, engine.tokenizer, tasks.problems, tasks, n=n,
                                           max_tokens=max_tokens, temperature=temperature,
                                           system_prompt=system_prompt, seed=seed)  # None: see ponder.rl
    per: dict[str, list] = {}
    for r in sampled:
        per.setdefault(r.problem_id, []).append(r)
    counts = [(len(v), sum(x.reward for x in v)) for v in per.values()]
    distinct = [len({" ".join(x.text.split()) for x in v if x.reward > 0}) for v in per.values()]
    out: dict[str, Any] = {"problems": len(tasks.problems), "greedy_accuracy": sum(r.reward for r in greedy) / len(greedy)}
    for k in (1, 4, 8):
        if k <= n:
            out[f"pass@{k}"] = sum(pass_at_k(m, int(c), k) for m, c in counts) / len(counts)
    out["distinct_correct_per_problem"] = sum(distinct) / len(distinct)
    out["sample_tokens_mean"] = sum(len(r.response_ids) for r in sampled) / len(sampled)
    out["wall_seconds"] = round(time.perf_counter() - start, 1)
    return out


def held_out_tasks(held_cfg: dict[str, Any], train_cfg: dict[str, Any]) -> TaskSet:
    """The held-out problems: ``held_cfg``'s task set less any question of the training set, each
    distinct question once (small task spaces, e.g. chain_sum's 200 one-digit pairs, repeat questions)."""
    held = load_tasks(held_cfg)
    seen = {" ".join(p.question.split()) for p in load_tasks(train_cfg).problems}
    drop = []
    for p in held.problems:
        key = " ".join(p.question.split())
        if key in seen:
            drop.append(p.id)
        seen.add(key)
    return held.without(drop)


class _Paused(Exception):
    """The sampler was asked for a round past ``--until``."""


def train_until(config: Any, until: int | None) -> tuple[Path, list[dict[str, Any]], str]:
    """Trains (or resumes) the recipe; with ``until`` = K < rounds, stops before round K + 1
    (its checkpoint-K stays for the resume). Returns the checkpoint to evaluate, the finished
    rounds' metrics and the evidence file's name."""
    from ponder.rl import engine_sampler
    from training.rl.trainer import train_rl

    tasks = load_tasks(config.tasks)
    inner = engine_sampler(config, tasks)

    async def sampler(checkpoint: Path, problems: Any, r: int) -> Any:
        if until is not None and r > until:
            raise _Paused(r)
        return await inner(checkpoint, problems, r)

    try:
        result = train_rl(config, sampler, tasks=tasks)
        return result.model_dir, result.metrics["rounds"], "evidence.json"
    except _Paused:
        done = [json.loads((config.out / "rounds" / f"round-{r}" / "metrics.json").read_text()) for r in range(1, until + 1)]
        return config.out / "checkpoints" / f"checkpoint-{until}", done, f"eval-round-{until}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", required=True, choices=["grpo", "treepo", "rover"])
    parser.add_argument("--config", type=Path, required=True, help="RLTrainConfig fields (configs/rl/small.yaml).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--eval-tasks", type=str, default=None, help="JSON task config of the held-out problems.")
    parser.add_argument("--until", type=int, default=None,
                        help="Train rounds 1..K only and evaluate round K's checkpoint (OUT/<recipe>/eval-round-K.json); "
                             "a later call with a larger K (or none) resumes from it.")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the update (1 is faster beside a busy vLLM server on 2 cores).")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("training.rl").setLevel(logging.INFO)

    from models.embedded import embedded_checkpoint
    from training.rl import RLTrainConfig

    base = Path(embedded_checkpoint())
    fields = {"system_prompt": DEFAULT_SYSTEM_PROMPT, **read_yaml(args.config, None)}
    held_cfg = json.loads(args.eval_tasks) if args.eval_tasks else {**fields["tasks"], "seed": fields["tasks"]["seed"] + 1000, "size": 30}
    held = held_out_tasks(held_cfg, fields["tasks"])
    eval_opts = {"max_tokens": fields.get("max_tokens", 96), "system_prompt": fields["system_prompt"]}
    args.out.mkdir(parents=True, exist_ok=True)
    cached = args.out / "base_eval.json"
    if not cached.exists():
        cached.write_text(json.dumps(asyncio.run(evaluate(base, held, **eval_opts)), indent=1))
    config = validated(RLTrainConfig, {**fields, "recipe": args.recipe, "base": str(base), "out": str(args.out / args.recipe)})
    start = time.perf_counter()
    model_dir, rounds, name = train_until(config, args.until)
    train_wall = time.perf_counter() - start
    after = asyncio.run(evaluate(model_dir, held, **eval_opts))
    evidence = {"recipe": args.recipe, "config": config.model_dump(mode="json"), "held_out": held_cfg,
                "held_out_problems": len(held), "before": json.loads(cached.read_text()), "after": after,
                "after_round": len(rounds), "train_wall_seconds": round(train_wall, 1),
                "rounds": [{k: v for k, v in r.items() if k not in ("steps", "per_prompt")}
                           | {"last_step": (r["steps"] or [{}])[-1]} for r in rounds]}
    (args.out / args.recipe / name).write_text(json.dumps(evidence, indent=1, default=str))
    print(json.dumps({"before": evidence["before"], "after": after, "train_wall_seconds": evidence["train_wall_seconds"]}))


if __name__ == "__main__":
    main()
