"""The GRPO loss pieces against hand-computed values (derivations in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from rltk.loss import (
    AGGREGATIONS,
    BatchTotals,
    clipped_token_loss,
    constant_normalizer,
    grpo_loss,
    k3_kl,
    sequence_mean,
    token_mean,
)


def _ratio_logp(ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """logp with gradient and old_logp such that exp(logp - old) == ratio."""
    old = torch.tensor([[-1.0]])
    logp = (old + math.log(ratio)).clone().requires_grad_(True)
    return logp, old


@pytest.mark.parametrize(
    "ratio, adv, eps_low, eps_high, want_loss, want_clipped, want_grad",
    [
        # ratio 1: -min(1*A, 1*A) = -A; d/dlogp of -ratio*A = -ratio*A = -A
        (1.0, 1.0, 0.2, 0.2, -1.0, False, -1.0),
        # A>0, ratio 1.5 > 1.2: -min(1.5, 1.2) = -1.2 (constant): clipped, gradient 0
        (1.5, 1.0, 0.2, 0.2, -1.2, True, 0.0),
        # A<0, ratio 1.5: -min(-1.5, -1.2) = 1.5, the unclipped term: gradient -ratio*A = 1.5
        (1.5, -1.0, 0.2, 0.2, 1.5, False, 1.5),
        # A<0, ratio 0.5 < 0.8: -min(-0.5, -0.8) = 0.8 (constant): clipped, gradient 0
        (0.5, -1.0, 0.2, 0.2, 0.8, True, 0.0),
        # A>0, ratio 0.5: -min(0.5, 0.8) = -0.5, unclipped: gradient -0.5
        (0.5, 1.0, 0.2, 0.2, -0.5, False, -0.5),
        # clip-higher: eps_high 0.28 lets ratio 1.25 through with A=2: -min(2.5, 2.56) = -2.5, gradient -2.5
        (1.25, 2.0, 0.2, 0.28, -2.5, False, -2.5),
        # same ratio with symmetric 0.2 clips: -min(2.5, 2*1.2) = -2.4, gradient 0
        (1.25, 2.0, 0.2, 0.2, -2.4, True, 0.0),
    ],
)
def test_clipped_token_loss_hand_values(ratio, adv, eps_low, eps_high, want_loss, want_clipped, want_grad):
    logp, old = _ratio_logp(ratio)
    loss, clipped = clipped_token_loss(logp, old, torch.tensor([adv]), eps_low, eps_high)
    assert loss.item() == pytest.approx(want_loss, abs=1e-6)
    assert clipped.item() is want_clipped
    loss.sum().backward()
    assert logp.grad.item() == pytest.approx(want_grad, abs=1e-6)
    if want_clipped:
        assert logp.grad.item() == 0.0  # exactly zero, not just small


def test_k3_kl_hand_value_and_zero_when_equal():
    # pi = 0.5, ref = 0.25: delta = log(0.25/0.5) = -log 2; exp(delta) - delta - 1 = 0.5 + log 2 - 1
    kl = k3_kl(torch.log(torch.tensor([[0.5]])), torch.log(torch.tensor([[0.25]])))
    assert kl.item() == pytest.approx(0.5 + math.log(2) - 1, abs=1e-7)
    lp = torch.randn(3, 5)
    assert torch.equal(k3_kl(lp, lp), torch.zeros(3, 5))
    assert (k3_kl(lp, torch.randn(3, 5)) >= 0).all()


PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # the 9s are padding and must not count


def test_aggregations_hand_values():
    totals = BatchTotals.of(MASK, max_tokens=4)
    assert totals == BatchTotals(sequences=2, tokens=4, max_tokens=4)
    # sequence: mean(1,2,3) = 2 and mean(4) = 4 -> (2 + 4) / 2 = 3
    assert sequence_mean(PER_TOKEN, MASK, totals).item() == pytest.approx(3.0)
    # token: (1+2+3+4) / 4 tokens = 2.5
    assert token_mean(PER_TOKEN, MASK, totals).item() == pytest.approx(2.5)
    # constant: 10 / (2 sequences * 4 max tokens) = 1.25
    assert constant_normalizer(PER_TOKEN, MASK, totals).item() == pytest.approx(1.25)


@pytest.mark.parametrize("name", ["sequence", "token", "constant"])
def test_micro_batches_sum_to_the_full_batch(name):
    agg = AGGREGATIONS.get(name)
    gen = torch.Generator().manual_seed(1)
    per_token = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    mask = (torch.rand(6, 5, generator=gen) > 0.3).double()
    mask[:, 0] = 1
    totals = BatchTotals.of(mask, max_tokens=7)
    full = agg(per_token, mask, totals)
    parts = sum(agg(per_token[i:i + 2], mask[i:i + 2], totals) for i in range(0, 6, 2))
    torch.testing.assert_close(parts, full, rtol=1e-12, atol=1e-12)


def test_grpo_loss_with_kl_hand_value():
    # one sequence, two tokens, ratio 1 (on-policy), A = 0.5, beta = 0.1
    # policy part per token: -0.5; KL per token: token 1 equal logps -> 0;
    # token 2 pi = 0.5, ref = 0.25 -> 0.5 + log 2 - 1 = 0.193147
    # sequence mean: (-0.5 + -0.5 + 0.1 * 0.193147) / 2
    logp = torch.log(torch.tensor([[0.4, 0.5]])).requires_grad_(True)
    ref = torch.log(torch.tensor([[0.4, 0.25]]))
    mask = torch.ones(1, 2)
    parts = grpo_loss(logp, logp.detach(), torch.tensor([0.5]), mask, BatchTotals.of(mask), beta=0.1, ref_logp=ref)
    want = (-1.0 + 0.1 * (0.5 + math.log(2) - 1)) / 2
    assert parts.loss.item() == pytest.approx(want, abs=1e-6)
    assert parts.policy_loss == pytest.approx(-0.5, abs=1e-6)
    assert parts.kl_sum == pytest.approx(0.5 + math.log(2) - 1, abs=1e-6)
    assert (parts.clipped_tokens, parts.tokens) == (0, 2)
    with pytest.raises(ValueError, match="reference"):
        grpo_loss(logp, logp.detach(), torch.tensor([0.5]), mask, BatchTotals.of(mask), beta=0.1)
