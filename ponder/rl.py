"""Wiring of the on-policy trainer (:mod:`training.rl`): its sampler is ponder's engine.

Each round's checkpoint is served through :func:`ponder.engine.open_engine` (a local vLLM
server ponder manages, restarted when it dies; or configured endpoints, waited for) and
sampled with token-id prompts: ``n`` responses per prompt in one request, or TreePO's
segment tree through the engine's bounded policy. Requests carry no per-request seed: on
vLLM-CPU a seeded request that the scheduler rewinds kills the engine ("CPU Generator does not
use offset", seen in the evidence run), so sampling is reproducible only through the saved
rollouts. The server is stopped when the round's
sampling ends, so the update has the cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ponder.config import ModelConfig
from search.context import Budget, SamplingDefaults, SearchContext
from search.protocols import Problem
from training.rl.config import RLTrainConfig
from training.rl.rollout import Rollout, Sampler, sample_independent, sample_tree
from verifiers.tasks import TaskSet


def engine_sampler(config: RLTrainConfig, tasks: TaskSet, model: ModelConfig | None = None) -> Sampler:
    """The trainer's sampler: serves the round's checkpoint, samples, verifies.

    Args:
        config: The run (sampler kind, n, max_tokens, temperature, system prompt, seed).
        tasks: The training task set (its verifier rewards the responses).
        model: Engine settings (timeouts, in-flight limit); its checkpoint is replaced by
            the round's. None: defaults with ``config.system_prompt``.
    """
    from ponder.engine import open_engine

    base = model or ModelConfig(system_prompt=config.system_prompt)

    async def sample(checkpoint: Path, problems: Sequence[Problem], r: int) -> list[Rollout]:
        settings = base.model_copy(update={"checkpoint": str(checkpoint), "endpoints": [], "model": None})
        async with open_engine(settings) as engine:
            if config.resolved_sampler == "independent":
                return await sample_independent(engine.client, engine.tokenizer, problems, tasks, n=config.n,
                                                max_tokens=config.max_tokens, temperature=config.temperature,
                                                top_p=config.top_p, system_prompt=engine.system_prompt)
            treepo, steps = config.tree_sampler()

            def make_context(problem: Problem, index: int) -> SearchContext:
                return SearchContext(policy=engine.policy, root_prefix=engine.root_prefix(problem), problem=problem,
                                     steps=steps, extract_fn=tasks.verifier.extract, budget=Budget(),
                                     sampling=SamplingDefaults(temperature=config.temperature, top_p=config.top_p),
                                     pause_clock=engine.outage_seconds)

            return await sample_tree(make_context, problems, tasks, treepo,
                                     max_concurrent_problems=config.max_concurrent_problems)

    return sample


def train_policy_rl(config: RLTrainConfig, tasks: TaskSet | None = None, model: ModelConfig | None = None,
                    **kwargs: Any) -> Any:
    """:func:`training.rl.trainer.train_rl` with the engine's sampler."""
    from training.rl.trainer import train_rl
    from verifiers.tasks import load_tasks

    tasks = tasks or load_tasks(config.tasks)
    return train_rl(config, engine_sampler(config, tasks, model), tasks=tasks, **kwargs)


def rl_train_config(recipe: str, config_path: Path, base: Path, out: Path, given: dict[str, Any]) -> RLTrainConfig:
    """`ponder train grpo|treepo|rover`'s run: RL.yaml's fields, then the command's options
    (``given``, None = not given), then recipe, base and out. Raises ConfigError naming the field."""
    from ponder.config import DEFAULT_SYSTEM_PROMPT, read_yaml, validated
    from search.protocols import ConfigError

    data = read_yaml(config_path, None)
    if not isinstance(data, dict):
        raise ConfigError("config", str(config_path), "the top level must be a mapping of RLTrainConfig fields")
    fields = {"system_prompt": DEFAULT_SYSTEM_PROMPT, **data, **{k: v for k, v in given.items() if v is not None}}
    return validated(RLTrainConfig, {**fields, "recipe": recipe, "base": str(base), "out": str(out)})
