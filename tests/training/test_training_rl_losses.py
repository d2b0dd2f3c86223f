"""ROVER and clipped-PG losses and the tabular tree Q on hand-computed toys (spec 06 §3, §6;
spec 03 §7)."""

from __future__ import annotations

import math

import pytest
import torch

from training.rl.losses import clipped_pg_loss, next_state_q, rover_loss, token_stats
from training.rl.tree_q import segment_q_targets, uniform_values

LN2, LN3 = math.log(2), math.log(3)


def logits_of(*rows: tuple[float, ...]) -> torch.Tensor:
    """Logits whose softmax is exactly the given probabilities (log p)."""
    return torch.tensor([[list(map(math.log, r)) for r in rows]], dtype=torch.float64)


# spec 06 §3 toy: a 2-step response over a 3-token vocabulary. State s0 (the prompt) takes
# token 0, state s1 takes token 1, then the episode ends. r~ = 0.5.
#   pi_theta(.|s0) = (1/2, 1/4, 1/4)   pi_old(.|s0) = (1/4, 1/4, 1/2)
#   pi_theta(.|s1) = (1/2, 1/4, 1/4)   pi_old(.|s1) = (1/3, 1/3, 1/3)
# Q(s0, 0) = ln(1/2) - ln(1/4) = ln 2;  Q(s1, 1) = ln(1/4) - ln(1/3) = ln 3 - 2 ln 2;
# Q'(s1) = (1/3) sum_a [ln pi_theta(a|s1) - ln pi_old(a|s1)] = -5/3 ln 2 + ln 3 (a MEAN over V);
# targets: t0 = r~ + beta Q'(s1), t1 = r~ (last token: no next state).
THETA = logits_of((1 / 2, 1 / 4, 1 / 4), (1 / 2, 1 / 4, 1 / 4))
OLD = logits_of((1 / 4, 1 / 4, 1 / 2), (1 / 3, 1 / 3, 1 / 3))
TOKENS = torch.tensor([[0, 1]])
MASK = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
R = torch.tensor([0.5], dtype=torch.float64)


def toy(rho: float = 1.0, beta: float = 1.0, mask: torch.Tensor = MASK):
    logp, mean = token_stats(THETA, TOKENS)
    old_logp, old_mean = token_stats(OLD, TOKENS)
    return rover_loss(logp, old_logp, mask, centred_rewards=R, mean_logp=mean, old_mean_logp=old_mean,
                      rho=rho, beta=beta)


def test_rover_two_step_three_token_toy():  # spec 06 §3
    q0, q1 = LN2, LN3 - 2 * LN2
    next_q = -5 / 3 * LN2 + LN3
    loss, stats = toy()
    expected = ((q0 - (0.5 + next_q)) ** 2 + (q1 - 0.5) ** 2) / 2  # / sum_i |y_i| = 2
    assert float(loss) == pytest.approx(expected, rel=1e-9)
    assert next_q < 0  # -0.0566
    assert stats["next_q_min"] == pytest.approx(next_q)
    assert stats["next_q_max"] == pytest.approx(0.0)  # the last token's
    assert stats["target_mean"] == pytest.approx((0.5 + next_q + 0.5) / 2)
    assert stats["q_mean"] == pytest.approx((q0 + q1) / 2)


def test_rover_uses_the_vocabulary_mean_not_the_sum():  # spec 06 §3 caveat
    logp, mean = token_stats(THETA, TOKENS)
    old_logp, old_mean = token_stats(OLD, TOKENS)
    got = next_state_q(mean, old_mean, MASK)
    summed = sum(math.log(a) - math.log(b) for a, b in zip((1 / 2, 1 / 4, 1 / 4), (1 / 3, 1 / 3, 1 / 3)))
    assert float(got[0, 0]) == pytest.approx(summed / 3)
    assert float(got[0, 0]) != pytest.approx(summed)


def test_rover_beta_zero_regresses_on_the_centred_reward_alone():  # spec 06 §3, §4.2.4
    q0, q1 = LN2, LN3 - 2 * LN2
    loss, stats = toy(beta=0.0)
    assert float(loss) == pytest.approx(((q0 - 0.5) ** 2 + (q1 - 0.5) ** 2) / 2)
    assert stats["target_min"] == stats["target_max"] == pytest.approx(0.5)


@pytest.mark.parametrize("rho", [0.5, 3.0])
def test_rover_rho_scales_q_and_the_next_state_term(rho: float):  # spec 06 §3
    q0, q1 = rho * LN2, rho * (LN3 - 2 * LN2)
    next_q = rho * (-5 / 3 * LN2 + LN3)
    loss, _ = toy(rho=rho)
    assert float(loss) == pytest.approx(((q0 - 0.5 - next_q) ** 2 + (q1 - 0.5) ** 2) / 2)


def test_rover_rho_to_zero_and_equal_policies_leave_r_tilde_squared():  # spec 06 §3 limits
    assert float(toy(rho=1e-9)[0]) == pytest.approx(0.25, abs=1e-8)
    logp, mean = token_stats(THETA, TOKENS)  # pi_theta = pi_old: Q = Q' = 0, L = mean r~^2
    loss, _ = rover_loss(logp, logp, MASK, centred_rewards=R, mean_logp=mean, old_mean_logp=mean)
    assert float(loss) == pytest.approx(0.25)


def test_rover_masks_the_last_token_and_padding():  # spec 06 §3: Q' = 0 after the last token
    # Three positions, the third is padding whose next-state statistics are not zero: a
    # response of one token (position 0) gets no next-state term from it.
    theta = logits_of((1 / 2, 1 / 4, 1 / 4), (1 / 2, 1 / 4, 1 / 4), (1 / 2, 1 / 4, 1 / 4))
    old = logits_of((1 / 4, 1 / 4, 1 / 2), (1 / 3, 1 / 3, 1 / 3), (1 / 3, 1 / 3, 1 / 3))
    tokens = torch.tensor([[0, 1, 2]])
    mask = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    logp, mean = token_stats(theta, tokens)
    old_logp, old_mean = token_stats(old, tokens)
    loss, stats = rover_loss(logp, old_logp, mask, centred_rewards=R, mean_logp=mean, old_mean_logp=old_mean)
    assert float(loss) == pytest.approx((LN2 - 0.5) ** 2)  # / 1 token
    assert stats["next_q_max"] == 0.0


def test_rover_gradient_is_reinforce_with_the_centred_reward_at_pi_old():  # spec 06 App. B view
    theta = THETA.clone().requires_grad_(True)
    logp, mean = token_stats(theta, TOKENS)
    old_logp, old_mean = token_stats(THETA, TOKENS)
    rover_loss(logp, old_logp.detach(), MASK, centred_rewards=R, mean_logp=mean,
               old_mean_logp=old_mean.detach())[0].backward()
    reinforce = THETA.clone().requires_grad_(True)
    lp, _ = token_stats(reinforce, TOKENS)
    (-(2 * 0.5) * lp.sum() / 2).backward()  # d/dtheta of (Q - r~)^2 = -2 r~ dlogpi at Q = 0
    assert torch.allclose(theta.grad, reinforce.grad)


def test_rover_given_targets_replace_the_paper_target():  # spec 06 §6 alternative
    logp, _ = token_stats(THETA, TOKENS)
    old_logp, _ = token_stats(OLD, TOKENS)
    targets = torch.tensor([[0.25, -0.5]], dtype=torch.float64)
    loss, _ = rover_loss(logp, old_logp, MASK, targets=targets)
    assert float(loss) == pytest.approx(((LN2 - 0.25) ** 2 + (LN3 - 2 * LN2 + 0.5) ** 2) / 2)


def test_clipped_pg_loss_on_a_toy():  # spec 03 §7: DAPO clip 0.2 / 0.28, c = 10, token mean
    # ratios e^0 = 1, e^0.5 = 1.65 (clipped at 1.28 for A > 0), e^-1 = 0.37 (clipped at 0.8
    # for A < 0), e^3 = 20.1 with A < 0 (dual clip: -c A = 10 * 1 = 10); one padded position.
    logp = torch.tensor([[0.0, 0.5, -1.0, 3.0, 9.0]], dtype=torch.float64)
    old = torch.zeros_like(logp)
    adv = torch.tensor([[2.0, 1.0, -1.0, -1.0, 5.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    loss, stats = clipped_pg_loss(logp, old, adv, mask)
    per_token = [-2.0, -1.28, 0.8, 10.0]
    assert float(loss) == pytest.approx(sum(per_token) / 4)
    assert stats["clip_fraction"] == pytest.approx(2 / 4)  # 1.65 and 0.37 were clipped
    no_dual, _ = clipped_pg_loss(logp, old, adv, mask, clip_ratio_c=None)
    assert float(no_dual) == pytest.approx((-2.0 - 1.28 + 0.8 + math.exp(3.0)) / 4)
    assert float(clipped_pg_loss(logp, old, adv, mask, normaliser=8.0)[0]) == pytest.approx(sum(per_token) / 8)


# spec 06 §6 tree: prompt -> a (-> a/x R=1, a/y R=0), b (R=0, a leaf); c/z unknown (truncated).
REWARDS = [1.0, 0.0, 0.0, 0.0]
PATHS = [("a", "x"), ("a", "y"), ("b",), ("c", "z")]
KNOWN = [True, True, True, False]


def test_tree_uniform_values_mean_over_expanded_children():  # spec 06 §6
    v = uniform_values(REWARDS, PATHS, KNOWN)
    assert v[("a",)] == pytest.approx(0.5) and v[("b",)] == 0.0
    assert v[("c",)] is None and v[("c", "z")] is None  # unknown, not 0
    assert v[()] == pytest.approx((0.5 + 0.0) / 2)  # c is left out of the root's mean
    # Q_u(s, c) > 0 iff a correct leaf lies below c (Thm 3.1 corollary)
    assert [v[(p[0],)] is not None and v[(p[0],)] > 0 for p in PATHS] == [True, True, False, False]


def test_tree_q_targets_are_centred_and_duplicates_merge():  # spec 06 §6
    got = segment_q_targets(REWARDS, PATHS, KNOWN)
    mean = 1 / 3  # the known leaves' mean reward
    assert got[0] == pytest.approx([0.5 - mean, 1 - mean]) and got[2] == pytest.approx([-mean])
    assert got[3] == [None, None]
    # The same step text twice is one action: (a, x) sampled twice does not double-count x.
    merged = uniform_values([1.0, 1.0, 0.0], [("a", "x"), ("a", "x"), ("a", "y")])
    assert merged[("a",)] == pytest.approx(0.5)
