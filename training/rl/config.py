"""The on-policy trainer's config: one model for the three recipes (grpo, treepo, rover)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from search.algorithms.treepo import TreePOConfig
from search.steps import StepFormat
from training.train.config import BaseTrainConfig
from verifiers.tasks import TaskConfig

Recipe = Literal["grpo", "treepo", "rover"]
RECIPES: tuple[str, ...] = ("grpo", "treepo", "rover")


class RLTrainConfig(BaseTrainConfig):
    """Rounds of sample (vLLM) -> verify -> advantages / targets -> update -> checkpoint.

    Defaults fit a few minutes a round on 2 CPU cores with the 135M embedded model; the
    paper values are noted per field. ``base``, ``out``, ``dtype``, ``gradient_checkpointing``
    and ``resume`` are :class:`~training.train.config.BaseTrainConfig`'s; the run folder also
    holds ``rounds/`` and one ``checkpoints/checkpoint-<round>`` per round.
    """

    recipe: Recipe = Field(description="grpo: group advantages + clipped PG; treepo: tree advantages (whitened) + "
                           "clipped PG; rover: ROVER's Q regression (spec 06 §3).")
    tasks: TaskConfig = Field(description="Training prompts and their verifier (gold answers used only to reward).")
    rounds: int = Field(2, ge=1, description="Sample -> update rounds.")
    prompts_per_round: int = Field(8, ge=1, description="Prompts sampled per round (the paper: 128).")
    n: int = Field(4, ge=1, description="Responses per prompt (independent sampler); the tree's width W (tree sampler).")
    sampler: Literal["independent", "tree"] | None = Field(
        None, description="independent: n responses per prompt; tree: TreePO's segment tree. None: tree for treepo, "
        "else independent.")
    treepo: TreePOConfig = Field(default_factory=TreePOConfig, description="The tree sampler (max_width is set to n).")
    segment_tokens: int = Field(32, ge=1, description="Tree sampler: tokens per segment L (the paper: 512).")
    max_tokens: int = Field(128, ge=1, description="Longest response in tokens (tree: max_depth = this / L).")
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature (TreePO / DAPO: 1.0; ROVER math: 0.6).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    system_prompt: str | None = Field(None, description="System turn of every prompt (the loop's / run's system prompt).")
    learning_rate: float = Field(5e-6, gt=0, description="AdamW learning rate, constant (the papers: 1e-6).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (TreePO: 0.1).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    ppo_epochs: int = Field(1, ge=1, description="Passes over a round's rollouts (the papers: 1).")
    mini_batch_size: int = Field(16, ge=1, description="Rollouts per optimizer step.")
    micro_batch_size: int = Field(4, ge=1, description="Rollouts per forward pass (gradients accumulate).")
    max_length: int = Field(768, ge=8, description="Prompt + response tokens kept; longer responses are cut.")
    eps_low: float = Field(0.2, ge=0, description="PG: lower clip (DAPO 0.2).")
    eps_high: float = Field(0.28, ge=0, description="PG: upper clip (DAPO clip-higher 0.28).")
    clip_ratio_c: float | None = Field(10.0, gt=1, description="PG: dual clip for negative advantages (verl's c); None: off.")
    std_normalize: bool = Field(True, description="grpo: divide group advantages by the group std (False: Dr. GRPO).")
    whiten: bool | None = Field(None, description="PG: whiten per-token advantages over the round; None: treepo yes, grpo no.")
    aggregation: Literal["average", "group_size"] = Field("average", description="treepo: tree advantage aggregation.")
    skip_uniform: bool = Field(False, description="treepo: skip subgroups whose rewards are all equal.")
    drop_uniform_groups: bool | None = Field(
        None, description="Leave out prompts whose rewards are all equal (DAPO dynamic sampling, no refill); "
        "None: yes for grpo/treepo, no for rover (its next-state term still acts).")
    rho: float = Field(1.0, gt=0, description="rover: Q = rho (log pi - log pi_old) (paper default 1).")
    beta: float = Field(1.0, ge=0, description="rover: weight of the next-state mean Q (paper default 1; 0 = none).")
    rover_target: Literal["paper", "tree"] = Field(
        "paper", description="rover: paper = r~ + beta mean_V Q(s'); tree = the tabular uniform-policy Q of the "
        "sampled tree (spec 06 §6, an extrapolation; needs the tree sampler).")
    seed: int = Field(0, description="Seed of the prompt order and the mini-batch order (vLLM requests are unseeded, see ponder.rl).")
    max_concurrent_problems: int = Field(16, ge=1, description="Tree sampler: trees grown at once.")
    keep_checkpoints: bool = Field(False, description="Keep every round's checkpoint (else only the newest, removed when done).")

    @model_validator(mode="after")
    def _consistent(self) -> RLTrainConfig:
        if self.rover_target == "tree" and self.resolved_sampler != "tree":
            raise ValueError("rover_target='tree' needs the tree sampler (sampler: tree)")
        if self.micro_batch_size > self.mini_batch_size:
            raise ValueError(f"micro_batch_size={self.micro_batch_size} is above mini_batch_size={self.mini_batch_size}")
        return self

    @property
    def resolved_sampler(self) -> str:
        return self.sampler or ("tree" if self.recipe == "treepo" else "independent")

    @property
    def resolved_whiten(self) -> bool:
        return self.recipe == "treepo" if self.whiten is None else self.whiten

    @property
    def resolved_drop_uniform(self) -> bool:
        return self.recipe != "rover" if self.drop_uniform_groups is None else self.drop_uniform_groups

    def tree_sampler(self) -> tuple[TreePOConfig, StepFormat]:
        """The TreePO config (width n) and its segment format (L tokens, depth max_tokens / L)."""
        depth = max(1, -(-self.max_tokens // self.segment_tokens))
        steps = StepFormat(fixed_tokens=self.segment_tokens, max_depth=depth)
        return self.treepo.model_copy(update={"max_width": self.n}), steps
