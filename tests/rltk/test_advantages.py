"""Advantage estimators against hand-computed values, and loop-vs-vectorised equivalence."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from rltk.advantages import (
    ADVANTAGES,
    batch_std_advantages,
    compute_advantages,
    group_relative_advantages,
    rloo_advantages,
    zero_variance_groups,
)
from rltk.core.errors import UserError


def test_group_relative_hand_values():
    # group [1, 2, 3]: mean 2, sample std sqrt(((-1)^2 + 0 + 1^2) / 2) = 1  ->  (r - 2) / 1
    adv = group_relative_advantages(torch.tensor([[1.0, 2.0, 3.0]]), eps=0.0)
    assert torch.equal(adv, torch.tensor([[-1.0, 0.0, 1.0]]))
    # with eps: (r - 2) / (1 + 0.5)
    adv = group_relative_advantages(torch.tensor([[1.0, 2.0, 3.0]]), eps=0.5)
    torch.testing.assert_close(adv, torch.tensor([[-2 / 3, 0.0, 2 / 3]]), rtol=0, atol=1e-7)


def test_dr_grpo_keeps_the_centered_reward():
    # Dr. GRPO: r - mean, no std division; [0, 0, 1, 1] -> mean 0.5
    adv = group_relative_advantages(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), scale_by_std=False)
    assert torch.equal(adv, torch.tensor([[-0.5, -0.5, 0.5, 0.5]]))
    assert torch.equal(compute_advantages("dr_grpo", torch.tensor([[0.0, 0.0, 1.0, 1.0]])), adv)


def test_rloo_hand_values():
    # [1, 2, 3]: 1 - (2+3)/2 = -1.5, 2 - (1+3)/2 = 0, 3 - (1+2)/2 = 1.5
    assert torch.equal(rloo_advantages(torch.tensor([[1.0, 2.0, 3.0]])), torch.tensor([[-1.5, 0.0, 1.5]]))


def test_batch_std_hand_values():
    # group means 2 and 0; centered [-1, 0, 1], [0, 0, 0]; batch [1,2,3,0,0,0]: mean 1,
    # squared deviations 0+1+4+1+1+1 = 8, sample variance 8/5 = 1.6
    adv = batch_std_advantages(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), eps=0.0)
    s = math.sqrt(1.6)
    torch.testing.assert_close(adv, torch.tensor([[-1 / s, 0.0, 1 / s], [0.0, 0.0, 0.0]]), rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "batch_std"])
def test_zero_variance_groups_get_exactly_zero(name):
    # 0.1 three times: the mean is not exactly 0.1 in floating point, the advantage must still be 0
    rewards = torch.tensor([[0.1, 0.1, 0.1], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    adv = compute_advantages(name, rewards)
    assert torch.equal(adv[0], torch.zeros(3)) and torch.equal(adv[2], torch.zeros(3))
    assert adv[1].abs().sum() > 0
    assert zero_variance_groups(rewards).tolist() == [True, False, True]


def _loop_reference(rewards: list[list[float]], name: str, eps: float = 1e-4) -> list[list[float]]:
    """The estimators written the slow obvious way, one group at a time with Python floats."""
    flat = [x for g in rewards for x in g]
    out = []
    for g in rewards:
        m = statistics.fmean(g)
        if max(g) == min(g):
            out.append([0.0] * len(g))
        elif name == "grpo":
            out.append([(x - m) / (statistics.stdev(g) + eps) for x in g])
        elif name == "dr_grpo":
            out.append([x - m for x in g])
        elif name == "rloo":
            out.append([x - (sum(g) - x) / (len(g) - 1) for x in g])
        elif name == "batch_std":
            out.append([(x - m) / (statistics.stdev(flat) + eps) for x in g])
    return out


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "batch_std"])
def test_loop_and_vectorised_agree(name):
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 3, (16, 8), generator=gen).double() / 2  # many ties, some constant groups
    rewards[3] = 0.5
    got = compute_advantages(name, rewards)
    want = torch.tensor(_loop_reference(rewards.tolist(), name), dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_registry_names_and_unknown():
    assert set(ADVANTAGES.names()) == {"grpo", "dr_grpo", "rloo", "batch_std"}
    with pytest.raises(UserError, match="unknown advantage estimator 'grpoo'.*did you mean"):
        compute_advantages("grpoo", torch.zeros(1, 2))


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\[B, G\]"):
        group_relative_advantages(torch.zeros(4))
    with pytest.raises(ValueError, match="at least 2"):
        rloo_advantages(torch.zeros(3, 1))
