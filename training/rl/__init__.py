"""On-policy RL training: one stack, three recipes (``grpo``, ``treepo``, ``rover``).

    prompts (task set) -> sampler (vLLM-served policy: n responses, or a TreePO tree)
      -> verify (the task's verifier)           rollout.py
      -> per-token signal (group / tree advantages, r~, tree Q)   batch.py, tree_q.py
      -> pi_old log-probs once, AdamW mini-batch steps on the loss  trainer.py, losses.py
      -> HF checkpoint (served by the next round)                  trainer.py

The sampler is injected (``ponder.rl.engine_sampler`` wires ponder's engine); the run folder
and the checkpoint writer are :mod:`training.train.common`'s. Importing this package is cheap.
"""

from __future__ import annotations

from training.rl.config import RECIPES, RLTrainConfig

__all__ = ["RECIPES", "RLTrainConfig"]
