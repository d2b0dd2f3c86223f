"""A round's rollouts as padded tensors, with the per-token signal each recipe trains on.

- grpo: GRPO group advantages (``training.rl.advantages.group_advantages``) broadcast to the
  response tokens (whitened over the round only with ``whiten``);
- treepo: TreePO tree advantages (``tree_advantages``) broadcast and whitened (spec 03 §6);
- rover, paper target: r~ = r - mean of the prompt's rewards per response (spec 06 §3);
- rover, tree target: the tabular uniform-policy Q of each segment (spec 06 §6), mean-centred,
  on that segment's tokens; tokens of unknown value are masked out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from training.rl.advantages import group_advantages, token_advantages, tree_advantages
from training.rl.config import RLTrainConfig
from training.rl.rollout import Rollout, groups
from training.rl.tree_q import segment_q_targets


@dataclasses.dataclass
class Batch:
    """Padded sequences (prompt + response) of kept rollouts and their per-token signal.

    ``mask``, ``signal`` are over shifted positions (position j scores ``input_ids[:, j+1]``).
    ``signal`` is the advantage (PG) or the target (rover tree); ``centred`` is r~ per rollout.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mask: torch.Tensor
    signal: torch.Tensor
    centred: torch.Tensor
    kept: list[int]
    truncated: int

    def __len__(self) -> int:
        return len(self.kept)

    def to(self, device: torch.device) -> Batch:
        """The same rows with their tensors on ``device`` (the model's)."""
        return dataclasses.replace(self, **{f: getattr(self, f).to(device) for f in
                                            ("input_ids", "attention_mask", "mask", "signal", "centred")})

    def rows(self, index: Sequence[int]) -> Batch:
        """The sub-batch of rows ``index``, trimmed to its longest sequence."""
        idx = torch.as_tensor(list(index), dtype=torch.long)
        width = int(self.attention_mask[idx].sum(1).max())
        return Batch(self.input_ids[idx, :width], self.attention_mask[idx, :width], self.mask[idx, : width - 1],
                     self.signal[idx, : width - 1], self.centred[idx], [self.kept[i] for i in index], 0)


def kept_rollouts(rollouts: Sequence[Rollout], config: RLTrainConfig) -> list[int]:
    """Indices of the rollouts trained on: known rewards, non-empty responses, and (with
    ``drop_uniform_groups``) only prompts whose rewards differ."""
    out = []
    for members in groups(rollouts).values():
        known = [i for i in members if rollouts[i].known and rollouts[i].response_ids]
        if config.resolved_drop_uniform and len({rollouts[i].reward for i in known}) <= 1:
            continue
        out += known
    return out


def per_token_signal(rollouts: Sequence[Rollout], kept: Sequence[int], lengths: Sequence[int],
                     config: RLTrainConfig) -> tuple[list[list[float | None]], list[float]]:
    """Per kept rollout: the per-token signal (``None`` = masked out) and r~."""
    by_group: dict[str, list[int]] = {}
    for k, i in enumerate(kept):
        by_group.setdefault(rollouts[i].problem_id, []).append(k)
    advantage = [0.0] * len(kept)
    centred = [0.0] * len(kept)
    targets: list[list[float | None]] = [[] for _ in kept]
    for members in by_group.values():
        rewards = [rollouts[kept[k]].reward for k in members]
        mean = sum(rewards) / len(rewards)
        for k, r in zip(members, rewards):
            centred[k] = r - mean
        if config.recipe == "grpo":
            values = group_advantages(rewards, std_normalize=config.std_normalize)
        elif config.recipe == "treepo":
            paths = [_path(rollouts[kept[k]]) for k in members]
            values = tree_advantages(rewards, paths, aggregation=config.aggregation, skip_uniform=config.skip_uniform)
        else:
            values = [0.0] * len(members)
        for k, v in zip(members, values):
            advantage[k] = v
        if config.recipe == "rover" and config.rover_target == "tree":
            paths = [_path(rollouts[kept[k]]) for k in members]
            q = segment_q_targets(rewards, paths)
            for k, seg_q in zip(members, q):
                per_token = [v for v, n in zip(seg_q, rollouts[kept[k]].segment_lengths or ()) for _ in range(n)]
                targets[k] = per_token[: lengths[k]] + [None] * max(0, lengths[k] - len(per_token))
    if config.recipe == "rover":
        if config.rover_target == "tree":
            return targets, centred
        return [[0.0] * n for n in lengths], centred
    tokens = token_advantages(advantage, lengths, whitened=config.resolved_whiten)
    return [list(t) for t in tokens], centred


def _path(rollout: Rollout) -> tuple[int, ...]:
    if rollout.path is None:
        raise ValueError(f"rollout of {rollout.problem_id!r} has no tree path: the recipe needs the tree sampler")
    return rollout.path


def build_batch(rollouts: Sequence[Rollout], config: RLTrainConfig, pad_id: int) -> Batch:
    """The kept rollouts as right-padded tensors; responses cut to fit ``max_length``."""
    kept = kept_rollouts(rollouts, config)
    seqs, lengths, starts, truncated = [], [], [], 0
    for i in kept:
        r = rollouts[i]
        room = max(1, config.max_length - len(r.prompt_ids))
        response = r.response_ids[:room]
        truncated += len(response) < len(r.response_ids)
        seqs.append(list(r.prompt_ids) + list(response))
        lengths.append(len(response))
        starts.append(len(r.prompt_ids) - 1)
    signal, centred = per_token_signal(rollouts, kept, lengths, config)
    width = max((len(s) for s in seqs), default=1)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), max(width - 1, 1)))
    values = torch.zeros_like(mask)
    for row, (seq, n, start, sig) in enumerate(zip(seqs, lengths, starts, signal)):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        attention[row, : len(seq)] = 1
        for t, v in enumerate(sig[:n]):
            if v is not None:
                mask[row, start + t] = 1.0
                values[row, start + t] = float(v)
    return Batch(input_ids, attention, mask, values, torch.tensor(centred, dtype=torch.float32), kept, truncated)
