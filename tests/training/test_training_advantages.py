"""Tree and group advantages on hand-computed scripted trees (spec 03 §6, §9)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.rl.advantages import (
    ROOT,
    group_advantages,
    segment_advantages,
    segment_values,
    token_advantages,
    tree_advantages,
    whiten,
)

# One prompt, two first segments (1, 2), each with two children:
#   t0 = 1/3 (R=1), t1 = 1/4 (R=0), t2 = 2/5 (R=1), t3 = 2/6 (R=1)
REWARDS = [1.0, 0.0, 1.0, 1.0]
PATHS = [(1, 3), (1, 4), (2, 5), (2, 6)]

# Uneven depths, 3 trajectories: t0 = 1/2/3 (R=1), t1 = 1/2/4 (R=0), t2 = 5 (R=0)
UNEVEN_REWARDS = [1.0, 0.0, 0.0]
UNEVEN_PATHS = [(1, 2, 3), (1, 2, 4), (5,)]


def test_tree_advantages_average():
    # spec 03 §6: mean 0.75; t0: A0 = 0.25, A1 = 1 - 0.5 = 0.5, depth 2 is a group of one
    # (skipped) -> 0.375; t1: (-0.75 - 0.5) / 2; t2, t3: (0.25 + 0) / 2.
    got = tree_advantages(REWARDS, PATHS)
    assert got == pytest.approx([0.375, -0.625, 0.125, 0.125])


def test_tree_advantages_group_size():
    # spec 03 §6 group_size: sum |G_d| A_d / sum |G_d| = (4 A0 + 2 A1) / 6.
    got = tree_advantages(REWARDS, PATHS, aggregation="group_size")
    assert got == pytest.approx([(4 * 0.25 + 2 * 0.5) / 6, (4 * -0.75 + 2 * -0.5) / 6, 1 / 6, 1 / 6])


def test_tree_advantages_skip_uniform_subgroups():
    # spec 03 §6 subtree_std_ds: the subtree under 2 has rewards (1, 1): dropped, only A0 stays.
    got = tree_advantages(REWARDS, PATHS, skip_uniform=True)
    assert got == pytest.approx([0.375, -0.625, 0.25, 0.25])


def test_tree_advantages_uneven_depths_and_variable_count():
    # spec 03 §6/§9: 3 trajectories (not W); mean 1/3. t0: A0 = 2/3, A1 = A2 = 1 - 0.5 (the
    # subtree under 1 and under 1/2 both hold t0, t1), A3 skipped; t2: only A0 (its subtree is
    # itself).
    avg = tree_advantages(UNEVEN_REWARDS, UNEVEN_PATHS)
    assert avg == pytest.approx([(2 / 3 + 0.5 + 0.5) / 3, (-1 / 3 - 0.5 - 0.5) / 3, -1 / 3])
    size = tree_advantages(UNEVEN_REWARDS, UNEVEN_PATHS, aggregation="group_size")
    assert size[0] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 2 * 0.5) / 7)
    # tree_subgroup_opt = 1: only depths 0 and 1 count.
    capped = tree_advantages(UNEVEN_REWARDS, UNEVEN_PATHS, max_subgroup_depth=1)
    assert capped[0] == pytest.approx((2 / 3 + 0.5) / 2)


def test_tree_advantages_flat_tree_is_the_group_baseline():
    # spec 03 §6: with no shared segments every subgroup is a singleton -> R_i - mean.
    rewards = [1.0, 0.0, 0.0, 1.0, 1.0]
    got = tree_advantages(rewards, [(i,) for i in range(5)])
    assert got == pytest.approx([r - 0.6 for r in rewards])


def test_tree_advantages_bad_input():
    with pytest.raises(ValueError, match="paths"):
        tree_advantages([1.0], [(1,), (2,)])
    with pytest.raises(ValueError, match="aggregation"):
        tree_advantages([1.0], [(1,)], aggregation="sum")  # type: ignore[arg-type]


def test_group_advantages():
    # GRPO: mean 0.75, unbiased std 0.5 -> (R - 0.75) / 0.5.
    got = group_advantages(REWARDS, eps=0.0)
    assert got == pytest.approx([0.5, -1.5, 0.5, 0.5])
    assert group_advantages(REWARDS, std_normalize=False) == pytest.approx([0.25, -0.75, 0.25, 0.25])
    assert group_advantages([1.0, 1.0, 1.0]) == pytest.approx([0.0, 0.0, 0.0])
    assert group_advantages([1.0]) == [0.0]


def test_whiten_over_masked_tokens():
    # spec 03 §6 batch whitening: masked values 1, 1, 3: mean 5/3, unbiased var 4/3.
    out = whiten([[1.0, 1.0, 9.0], [3.0, 9.0, 9.0]], [[1, 1, 0], [1, 0, 0]], eps=0.0)
    std = math.sqrt(4 / 3)
    np.testing.assert_allclose(out, [[-2 / 3 / std, -2 / 3 / std, 0.0], [4 / 3 / std, 0.0, 0.0]])
    with pytest.raises(ValueError, match="mask"):
        whiten([[1.0]], [[1, 1]])


def test_token_advantages_broadcast_then_whiten():
    # spec 03 §6: the trajectory advantage on every token, then whitened over the batch's tokens.
    out = token_advantages([1.0, 3.0], [2, 1])
    std = math.sqrt(4 / 3)
    assert [len(row) for row in out] == [2, 1]
    assert out[0] == pytest.approx([-2 / 3 / std] * 2, rel=1e-6)
    assert out[1] == pytest.approx([4 / 3 / std], rel=1e-6)
    assert token_advantages([0.5, -1.0], [1, 2], whitened=False) == [[0.5], [-1.0, -1.0]]


def test_segment_values_mean_of_children_bottom_up():
    # spec 03 §6 calculate_rewards_iterative: node value = mean of its children's values.
    values = segment_values(UNEVEN_REWARDS, UNEVEN_PATHS)
    assert values[3] == 1.0 and values[4] == 0.0 and values[5] == 0.0
    assert values[2] == 0.5 and values[1] == 0.5
    assert values[ROOT] == pytest.approx(0.25)  # mean of V(1), V(5): not the mean of the leaves (1/3)
    assert segment_advantages(REWARDS, PATHS) == [[-0.25, 0.5], [-0.25, -0.5], [0.25, 0.0], [0.25, 0.0]]


def test_segment_values_rejects_inconsistent_paths():
    with pytest.raises(ValueError, match="depths"):
        segment_values([1.0, 0.0], [(1, 2), (2,)])
