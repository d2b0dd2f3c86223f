"""The loop config: training and held-out problems, the label stage, the trainers, the evaluation.

Validated up front; errors name the field and the value (``ConfigError``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from ponder.config import DEFAULT_SYSTEM_PROMPT, ModelConfig, read_yaml, validated
from ponder.loop.judge import JudgeBenchConfig
from ponder.requirements import check_labels, check_search
from search.algorithms import AlgorithmConfig
from search.context import Budget
from search.labels import LabelConfig, MathShepherdConfig
from search.protocols import ConfigError
from search.steps import StepFormat
from training.export.planted import PlantedRowsConfig
from verifiers.tasks import TaskConfig


class LabelStageConfig(BaseModel):
    """Round r's label-mode search on the training problems (with round r-1's models)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    search: AlgorithmConfig = Field(description="The search that grows the trees to label.")
    budget: Budget = Field(default_factory=Budget, description="Per-problem budget of that search.")
    labels: list[LabelConfig] = Field(
        default_factory=lambda: [MathShepherdConfig(num_rollouts=4, max_rollout_tokens=256)],
        description="Label generators run on each tree.")
    prm_generator: str | list[str] = Field(
        "math_shepherd", description="Whose labels train the PRM: one of labels' generators, or several, mixed into "
        "one dataset (the first listed wins where two label the same step: e.g. [symbolic, math_shepherd]).")
    planted: PlantedRowsConfig | None = Field(
        None, description="Add planted-error solutions of the training split (never the held-out split that the "
        "judge stage and `ponder bench prm` use) to the PRM's data; None: none.")
    soft_labels: bool = Field(False, description="Train the PRM on soft labels (values) instead of hard ones.")
    uses_reward: bool = Field(False, description="The label search scores steps with the round's PRM.")

    @pydantic.model_validator(mode="after")
    def _generator_is_labelled(self) -> LabelStageConfig:
        present = {g.generator for g in self.labels}
        for name in self.prm_generators:
            if name not in present:
                raise ValueError(f"prm_generator {name!r} is not among the labels' generators")
        if not self.prm_generators:
            raise ValueError("prm_generator: name at least one generator")
        return self

    @property
    def prm_generators(self) -> list[str]:
        """The generators whose labels train the PRM, in priority order."""
        return [self.prm_generator] if isinstance(self.prm_generator, str) else list(self.prm_generator)

    @property
    def mixed(self) -> bool:
        """Whether the PRM trains on a mix (several generators, or planted rows)."""
        return len(self.prm_generators) > 1 or self.planted is not None


class EvalConfig(BaseModel):
    """Solve-mode evaluation on the held-out problems, every method at the same budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: Budget = Field(description="Per-problem budget shared by every method (compare at equal compute).")
    methods: dict[str, AlgorithmConfig] = Field(description="Method name -> search (cot, self_consistency, best_of_n, ...).")
    prm_methods: list[str] = Field(
        default_factory=lambda: ["best_of_n", "step_beam"],
        description="Methods that score steps with the round's PRM (the others use none).")


class LoopConfig(BaseModel):
    """`ponder loop`: rounds of label -> train PRM -> train policy -> evaluate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("loop", description="Loop name; the default loop_dir is runs/<name>.")
    loop_dir: str | None = Field(None, description="Where the rounds go; default runs/<name>.")
    rounds: int = Field(2, ge=0, description="Improvement rounds after round 0 (which only evaluates the base models).")
    train_tasks: TaskConfig = Field(description="Problems the label stage searches (gold answers used there only).")
    eval_tasks: TaskConfig = Field(description="Held-out problems (checked disjoint from train_tasks).")
    drop_shared_eval: bool = Field(
        False, description="Leave out held-out problems whose question is also a training question (their ids are "
        "written to LOOP_DIR/dropped_eval.json); False: such an overlap is an error.")
    base_policy: str | None = Field(None, description="Policy checkpoint of round 0; default: the embedded model.")
    base_prm: str | None = Field(None, description="PRM checkpoint of round 0 (a generative judge); default: base_policy.")
    steps: StepFormat = Field(default_factory=StepFormat, description="Step format of every search.")
    system_prompt: str | None = Field(DEFAULT_SYSTEM_PROMPT, description="System turn of every policy prompt.")
    max_concurrent_problems: int = Field(16, ge=1, description="Problems searched at once.")
    max_in_flight: int = Field(64, ge=1, description="Requests in flight to each server.")
    model: ModelConfig = Field(
        default_factory=ModelConfig,
        description="How the label and eval stages serve each round's policy, as a run's model block: replicas, "
        "cluster (Ray replica actors), routing and the server knobs. The checkpoint is the round's and the system "
        "prompt and max_in_flight are the loop's own fields: leave checkpoint, endpoints, model, system_prompt and "
        "max_in_flight unset here.")
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature of steps.")
    label: LabelStageConfig = Field(description="The label stage.")
    train_prm: dict[str, Any] = Field(
        default_factory=dict, description="PRMTrainConfig fields (not dataset/base/out), e.g. num_epochs, learning_rate.")
    policy_recipe: Literal["sft", "dpo", "grpo", "treepo", "rover"] = Field(
        "sft", description="How round r trains the policy: sft (correct solutions), dpo (step pairs of the label "
        "run), or on-policy on train_tasks: grpo (group advantages), treepo (tree advantages), rover (spec 06).")
    train_policy: dict[str, Any] = Field(
        default_factory=dict, description="Fields of the recipe's config (SFTTrainConfig, DPOTrainConfig or "
        "training.rl.RLTrainConfig), not dataset/base/out/recipe/tasks.")
    eval: EvalConfig = Field(description="The held-out evaluation.")
    judge: JudgeBenchConfig | None = Field(
        default_factory=JudgeBenchConfig, description="Each round's PRM on a small held-out planted set (step AUROC, "
        "first-error accuracy: `ponder bench prm`'s numbers) in the report; None: no judge stage.")

    @pydantic.model_validator(mode="after")
    def _model_block_serves_the_rounds(self) -> LoopConfig:
        """The model block says how to serve; what is served and how it is prompted are the loop's."""
        defaults = ModelConfig()
        for name in ("checkpoint", "endpoints", "model", "system_prompt", "max_in_flight"):
            if getattr(self.model, name) != getattr(defaults, name):  # a dumped loop.yaml holds the defaults
                fix = f"set the loop's {name} instead" if name in ("system_prompt", "max_in_flight") else (
                    "each round serves its own checkpoint (base_policy for round 0)")
                raise ConfigError(f"model.{name}", getattr(self.model, name), f"the loop sets it: {fix}")
        return self

    @pydantic.model_validator(mode="after")
    def _stages_have_what_they_need(self) -> LoopConfig:
        """Every stage's searches and trainers, checked now, not rounds later: the label search
        (scored by the round's PRM only with ``label.uses_reward``), its generators, each
        evaluated method (scored only when listed in ``eval.prm_methods``; evaluation never
        sees gold answers) and the trainers' fields."""
        lab, ev = self.label, self.eval
        check_search(lab.search, where="label.search", has_reward=lab.uses_reward, label_mode=True,
                     reward_fix="set label.uses_reward: true (the round's PRM scores the steps)")
        check_labels(lab.labels, lab.search, where="label.labels", search_where="label.search", label_mode=True)
        for name, method in ev.methods.items():
            check_search(method, where=f"eval.methods.{name}", has_reward=name in ev.prm_methods, label_mode=False,
                         reward_fix=f"add {name} to eval.prm_methods (the round's PRM scores its steps)",
                         oracle_fix=None)
        self._check_trainers()
        return self

    def _check_trainers(self) -> None:
        """The trainers' configs built as the runner builds them (placeholder paths)."""
        from training.train import make_config

        recipe = self.policy_recipe
        on_policy = recipe in ("grpo", "treepo", "rover")
        for where, fields, own in (("train_prm", self.train_prm, ("dataset", "base", "out")),
                                   ("train_policy", self.train_policy,
                                    ("base", "out", "recipe", "tasks") if on_policy else ("dataset", "base", "out"))):
            for key in own:
                if key in fields:
                    raise ConfigError(f"{where}.{key}", fields[key], "the loop sets it for each round: remove it")
        paths: dict[str, Any] = {"dataset": Path("dataset"), "base": Path("base"), "out": Path("out")}
        policy_fields = {"system_prompt": self.system_prompt, **self.train_policy}
        try:
            make_config("prm", **paths, **self.train_prm)
        except ConfigError as err:
            raise ConfigError(f"train_prm.{err.field}", err.value, err.reason) from None
        if not on_policy:
            try:
                make_config(recipe, **paths, **policy_fields)
            except ConfigError as err:
                raise ConfigError(f"train_policy.{err.field}", err.value, err.reason) from None
            return
        from training.rl import RLTrainConfig

        try:
            RLTrainConfig(recipe=recipe, base=paths["base"], out=paths["out"], tasks=self.train_tasks,
                          **policy_fields)
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            raise ConfigError("train_policy." + ".".join(str(p) for p in first["loc"]), first.get("input"),
                              first["msg"]) from None

    @property
    def resolved_loop_dir(self) -> Path:
        return Path(self.loop_dir or Path("runs") / self.name)


def load_loop_config(path: str | Path, overrides: dict[str, Any] | None = None) -> LoopConfig:
    """Reads and validates a loop config YAML.

    Raises:
        ConfigError: Naming the first offending field and its value.
    """
    return validated(LoopConfig, read_yaml(path, overrides))
