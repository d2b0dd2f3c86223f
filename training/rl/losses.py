"""Losses of the on-policy trainer: pure torch functions of per-token log-probabilities.

Shapes: ``(batch, positions)`` for one padded batch of prompt + response sequences, shifted
so that position j scores token ``input_ids[:, j + 1]``; ``mask`` is 1 on response tokens.
Response tokens of a sequence are contiguous (prompt, response, padding).

- :func:`clipped_pg_loss`: DAPO's clipped policy-gradient objective (spec 03 §7: clip
  eps_low 0.2 / eps_high 0.28, dual clip c = 10, token-mean, no KL), on per-token
  advantages (GRPO group advantages broadcast, or TreePO tree advantages broadcast and
  whitened, :mod:`training.rl.advantages`).
- :func:`rover_loss`: ROVER's Q regression (spec 06 §3), with the paper's target (the
  uniform mean of the next state's Q over the whole vocabulary) or a given per-token target
  (the tabular tree Q of :mod:`training.rl.tree_q`, spec 06 §6).

Each loss divides by ``normaliser`` (default: the mask's token count), so a caller that
accumulates gradients over micro-batches passes the token count of the whole optimizer step
and gets the formula's 1 / sum_i |y_i| exactly.
"""

from __future__ import annotations

import torch


def token_stats(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log pi(token), mean over the vocabulary of log pi(.))`` at each position.

    Args:
        logits: ``(batch, positions, vocab)``: the distribution at each position.
        tokens: ``(batch, positions)``: the token taken there.

    Returns:
        Two ``(batch, positions)`` tensors: the taken token's log-probability and
        (1 / |V|) sum_a log pi(a | s), the vocabulary MEAN (not the sum) of the log-softmax.
    """
    logsumexp = torch.logsumexp(logits, dim=-1)
    taken = torch.gather(logits, -1, tokens.unsqueeze(-1)).squeeze(-1) - logsumexp
    return taken, logits.mean(dim=-1) - logsumexp


def _normaliser(mask: torch.Tensor, normaliser: float | torch.Tensor | None) -> torch.Tensor:
    total = mask.sum() if normaliser is None else torch.as_tensor(normaliser, dtype=mask.dtype)
    return total.clamp(min=1.0)


def clipped_pg_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    clip_ratio_c: float | None = 10.0,
    normaliser: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """DAPO's clipped surrogate with token-mean aggregation and no KL term (spec 03 §7).

    Per token: ratio = exp(logp - old_logp), l = -min(ratio A, clip(ratio, 1 - eps_low,
    1 + eps_high) A); for A < 0 the dual clip bounds l by -c A (verl's ``clip_ratio_c``).
    The loss is sum(mask l) / normaliser.

    Returns:
        ``(loss, stats)``: stats has ``clip_fraction`` and ``ratio_mean`` over the masked tokens.
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per_token = torch.maximum(unclipped, clipped)
    if clip_ratio_c is not None:
        dual = torch.minimum(per_token, -advantages * clip_ratio_c)
        per_token = torch.where(advantages < 0, dual, per_token)
    loss = (per_token * mask).sum() / _normaliser(mask, normaliser)
    count = mask.sum().clamp(min=1.0)
    with torch.no_grad():
        stats = {
            "clip_fraction": float(((clipped > unclipped).float() * mask).sum() / count),
            "ratio_mean": float((ratio * mask).sum() / count),
        }
    return loss, stats


def next_state_q(mean_logp: torch.Tensor, old_mean_logp: torch.Tensor, mask: torch.Tensor, *,
                 rho: float = 1.0) -> torch.Tensor:
    """ROVER's Q' = (1 / |V|) sum_a Q(s_{t+1}, a) for each response token t (spec 06 §3),
    under stop-gradient.

    Q(s, a) = rho (log pi_theta(a|s) - log pi_old(a|s)), so its vocabulary mean at s_{t+1} is
    rho (mean log pi_theta - mean log pi_old) at position t + 1. It is 0 at a response's
    last token (the next state is terminal) and wherever ``mask`` is 0.
    """
    per_state = rho * (mean_logp - old_mean_logp).detach()
    shifted = torch.zeros_like(per_state)
    shifted[:, :-1] = per_state[:, 1:] * mask[:, 1:]
    return shifted * mask


def rover_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    mask: torch.Tensor,
    *,
    centred_rewards: torch.Tensor | None = None,
    mean_logp: torch.Tensor | None = None,
    old_mean_logp: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    rho: float = 1.0,
    beta: float = 1.0,
    normaliser: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """ROVER's loss (spec 06 §3, Alg. 1 of arXiv 2509.24981).

    Per response token t of response i:

    - Q(s_t, a_t) = rho (log pi_theta(a_t|s_t) - log pi_old(a_t|s_t));
    - target Q^ = r~_i + beta (1 / |V|) sum_{a in V} Q(s_{t+1}, a), stop-gradient, the next-
      state term 0 after the last token (:func:`next_state_q`). The paper's operator is the
      MEAN over the whole vocabulary, not the sum (a sum would scale Q' by |V|, ~5e4 here);
      r~_i = r_i - mean of the prompt's rewards (no std division), on every token;
    - L = (1 / sum_i |y_i|) sum_i sum_t (Q(s_t, a_t) - Q^(s_t, a_t))^2.

    With ``targets`` given instead of ``centred_rewards`` / ``mean_logp``, Q^ is that
    per-token tensor (the tabular tree Q of spec 06 §6, an extrapolation, not the paper);
    tokens whose target is unknown should be masked out by the caller.

    Args:
        logp, old_logp: ``(batch, positions)`` log-probabilities of the taken tokens.
        mask: 1 on response tokens.
        centred_rewards: ``(batch,)`` r~ per response (paper target).
        mean_logp, old_mean_logp: ``(batch, positions)`` vocabulary means of the log-softmax
            (:func:`token_stats`), for the paper target.
        targets: ``(batch, positions)`` given targets (tree target).
        rho: Temperature of the Q parameterisation (paper default 1).
        beta: Weight of the next-state term (paper default 1; 0 = no bootstrapping).
        normaliser: Total response tokens of the optimizer step (default: mask's).

    Returns:
        ``(loss, stats)``: spec 06 §5's target and next-Q mean/min/max, q mean, loss.
    """
    q = rho * (logp - old_logp)
    if targets is None:
        if centred_rewards is None or mean_logp is None or old_mean_logp is None:
            raise ValueError("rover_loss needs centred_rewards, mean_logp and old_mean_logp, or targets")
        next_q = next_state_q(mean_logp, old_mean_logp, mask, rho=rho)
        target = (centred_rewards[:, None] + beta * next_q) * mask
    else:
        next_q = torch.zeros_like(q)
        target = targets.detach() * mask
    loss = (((q - target) ** 2) * mask).sum() / _normaliser(mask, normaliser)
    stats = _masked_stats({"target": target, "next_q": next_q, "q": q.detach()}, mask)
    return loss, stats


def _masked_stats(values: dict[str, torch.Tensor], mask: torch.Tensor) -> dict[str, float]:
    on = mask.bool()
    out: dict[str, float] = {}
    for name, v in values.items():
        picked = v.detach()[on]
        if picked.numel() == 0:
            continue
        out.update({f"{name}_mean": float(picked.mean()), f"{name}_min": float(picked.min()),
                    f"{name}_max": float(picked.max())})
    return out


def masked_entropy(logits: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean entropy (nats) of the policy over the masked positions (spec 06 §5)."""
    with torch.no_grad():
        logp = torch.log_softmax(logits.float(), dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)
        return float((entropy * mask).sum() / mask.sum().clamp(min=1.0))
