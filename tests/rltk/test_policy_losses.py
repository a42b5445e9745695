"""The policy losses (ppo_clip, GSPO, CISPO) and the sampler–learner mismatch correction (TIS, MIS) against
hand-computed values and gradients (derivations in the comments)."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

import rltk.loss
import rltk.policy_losses
from rltk.core.config import from_dict
from rltk.core.errors import UserError
from rltk.grpo import GRPOJobConfig
from rltk.grpo.inputs import load_inputs
from rltk.loss import BatchTotals, LossFields, grpo_loss, sequence_mean, token_mean
from rltk.policy_losses import (POLICY_LOSSES, MismatchStats, PolicyLossFields, bind_policy_loss, cispo_token_loss,
                                clipped_token_loss, gspo_token_loss, ppo_clip_loss, sampler_correction)


@pytest.mark.parametrize("module", [rltk.policy_losses, rltk.loss])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


def test_registry_names_and_user_functions():
    assert POLICY_LOSSES.names() == ["cispo", "gspo", "ppo_clip"]
    assert bind_policy_loss(PolicyLossFields(policy_loss="rltk.policy_losses:cispo_token_loss")) is not None
    with pytest.raises(UserError, match="policy loss module"):
        bind_policy_loss(PolicyLossFields(policy_loss="no_such_module:fn"))


# ----------------------------------------------------------------------------- default = the old loss, exactly


def test_default_config_gives_exactly_the_old_loss_and_gradient():
    gen = torch.Generator().manual_seed(0)
    old = torch.randn(4, 6, generator=gen) - 2.0
    base = old + 0.3 * torch.randn(4, 6, generator=gen)  # ratios around 1, some clipped on either side
    adv = torch.tensor([1.0, -0.5, 2.0, -1.5])
    mask = (torch.rand(4, 6, generator=gen) > 0.2).float()
    cfg = LossFields(epsilon_low=0.2, epsilon_high=0.28)  # the defaults, with the main job's clip-higher
    totals = BatchTotals.of(mask, max_tokens=8)
    results = []
    for bound in (None, bind_policy_loss(cfg)):  # None: grpo_loss's own clipped surrogate, the code as it was
        logp = base.clone().requires_grad_(True)
        parts = grpo_loss(logp, old, adv, mask, totals, cfg.epsilon_low, cfg.epsilon_high, aggregate=token_mean,
                          policy_loss=bound)
        parts.loss.backward()
        results.append((parts.loss.detach(), logp.grad, parts.clipped_tokens))
    (l0, g0, c0), (l1, g1, c1) = results
    assert torch.equal(l0, l1) and torch.equal(g0, g1) and c0 == c1 > 0  # bit for bit
    loss, clipped = ppo_clip_loss(base, old, adv, mask, cfg)  # the registered default is the same function
    want_loss, want_clipped = clipped_token_loss(base, old, adv, 0.2, 0.28)
    assert torch.equal(loss, want_loss) and torch.equal(clipped, want_clipped)


# ----------------------------------------------------------------------------- GSPO

# two sequences: 2 real tokens + 1 pad, 1 real token + 2 pads; the pads' log-ratios (5.0) must not count
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
DELTA = torch.tensor([[0.1, 0.3, 5.0], [-0.2, 5.0, 5.0]], dtype=torch.float64)  # logp - old_logp
OLD = torch.full((2, 3), -1.0, dtype=torch.float64)


def _gspo(adv, low, high):
    logp = (OLD + DELTA).clone().requires_grad_(True)
    out = gspo_token_loss(logp, OLD, torch.tensor(adv, dtype=torch.float64), MASK.double(),
                          PolicyLossFields(gspo_epsilon_low=low, gspo_epsilon_high=high))
    return logp, out


def test_gspo_sequence_ratio_hand_values():
    # s_0 = exp(mean(0.1, 0.3)) = e^0.2 = 1.221403; s_1 = exp(-0.2) = 0.818731 (pads ignored)
    # wide range 0.3: A_0 = 1: -min(1.2214, 1.2214) = -1.221403 on every token of sequence 0 (pad too, masked later)
    #                 A_1 = -1: -min(-0.8187, -clip(0.8187, 0.7, 1.3)) = 0.818731
    _, (loss, clipped) = _gspo([1.0, -1.0], 0.3, 0.3)
    torch.testing.assert_close(loss, torch.tensor([[-1.221403] * 3, [0.818731] * 3], dtype=torch.float64), rtol=0, atol=1e-6)
    assert not clipped.any()
    # the paper's range (3e-4, 4e-4): s_0 > 1.0004 with A > 0 -> -1.0004, clipped; s_1 < 0.9997 with A < 0 -> 0.9997
    logp, (loss, clipped) = _gspo([1.0, -1.0], 3e-4, 4e-4)
    torch.testing.assert_close(loss, torch.tensor([[-1.0004] * 3, [0.9997] * 3], dtype=torch.float64), rtol=0, atol=1e-12)
    assert clipped.all()  # the whole sequence is clipped, every token with it
    sequence_mean(loss, MASK.double(), BatchTotals.of(MASK)).backward()
    assert torch.equal(logp.grad, torch.zeros_like(logp))  # no gradient at all


def test_gspo_gradient_at_ratio_one_is_the_length_normalised_sequence_gradient():
    # ratio 1: d/dlogp_t of sequence_mean = -A_i / (|y_i| * N): sequence 0: -1 / (2 * 2) = -0.25 per token,
    # sequence 1: -(-1) / (1 * 2) = 0.5; padding 0
    logp = OLD.clone().requires_grad_(True)
    loss, _ = gspo_token_loss(logp, OLD, torch.tensor([1.0, -1.0], dtype=torch.float64), MASK.double(), PolicyLossFields())
    sequence_mean(loss, MASK.double(), BatchTotals.of(MASK)).backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.25, -0.25, 0.0], [0.5, 0.0, 0.0]], dtype=torch.float64),
                               rtol=0, atol=1e-15)


def test_gspo_token_form_has_the_sequence_objectives_gradient():
    # GSPO's sequence objective J = -(1/N) sum_i min(s_i A_i, clip(s_i) A_i), s_i = exp(mean_t(logp - old)), taken by
    # autograd, has the gradient of the token form aggregated with sequence_mean, clipped or not
    gen = torch.Generator().manual_seed(3)
    old = torch.randn(5, 7, generator=gen, dtype=torch.float64) - 2
    delta = 0.05 * torch.randn(5, 7, generator=gen, dtype=torch.float64)
    mask = torch.ones(5, 7, dtype=torch.float64)
    for i, n in enumerate([7, 3, 1, 5, 6]):
        mask[i, n:] = 0
    adv = torch.tensor([1.0, -1.0, 0.5, -0.3, 2.0], dtype=torch.float64)
    knobs = PolicyLossFields(gspo_epsilon_low=0.01, gspo_epsilon_high=0.02)
    a = (old + delta).clone().requires_grad_(True)
    token, clipped = gspo_token_loss(a, old, adv, mask, knobs)
    sequence_mean(token, mask, BatchTotals.of(mask)).backward()
    b = (old + delta).clone().requires_grad_(True)
    s = torch.exp(((b - old) * mask).sum(1) / mask.sum(1))  # [N]
    (-torch.minimum(s * adv, s.clamp(0.99, 1.02) * adv).mean()).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-15)
    assert 0 < int(clipped[:, 0].sum()) < 5  # some sequences clipped, some not: both cases covered


# ----------------------------------------------------------------------------- CISPO


@pytest.mark.parametrize(
    "ratio, adv, logp, want_loss, want_grad, want_clipped",
    [
        # ratio 1: w = 1; loss -1 * A * logp = -(1)(1)(-1) = 1; gradient -w A = -1
        (1.0, 1.0, -1.0, 1.0, -1.0, False),
        # ratio 1.5 > 1.2 with A > 0: w = 1.2 (capped); loss -1.2 * 1 * (-1) = 1.2; gradient -1.2, where PPO's is 0
        (1.5, 1.0, -1.0, 1.2, -1.2, True),
        # ratio 0.5 with A < 0: no lower bound, w = 0.5; loss -0.5 * (-1) * (-2) = -1; gradient -0.5 * (-1) = 0.5
        (0.5, -1.0, -2.0, -1.0, 0.5, False),
        # ratio 3 with A < 0: w = 1.2; loss -1.2 * (-2) * (-0.5) = -1.2; gradient -1.2 * (-2) = 2.4
        (3.0, -2.0, -0.5, -1.2, 2.4, True),
    ],
)
def test_cispo_hand_values(ratio, adv, logp, want_loss, want_grad, want_clipped):
    lp = torch.tensor([[logp]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[logp - math.log(ratio)]], dtype=torch.float64)
    loss, clipped = cispo_token_loss(lp, old, torch.tensor([adv], dtype=torch.float64), torch.ones(1, 1),
                                     PolicyLossFields(cispo_epsilon_high=0.2))
    assert loss.item() == pytest.approx(want_loss, abs=1e-12)
    assert clipped.item() is want_clipped
    loss.sum().backward()
    assert lp.grad.item() == pytest.approx(want_grad, abs=1e-12)


def test_cispo_weight_carries_no_gradient_and_no_token_is_dropped():
    # gradient of sum(loss) w.r.t. logp = -w * A exactly, w = min(exp(logp - old), 1 + eps) treated as a constant
    gen = torch.Generator().manual_seed(1)
    old = torch.randn(3, 4, generator=gen, dtype=torch.float64) - 2
    logp = (old + torch.randn(3, 4, generator=gen, dtype=torch.float64)).requires_grad_(True)  # ratios far from 1
    adv = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    loss, clipped = cispo_token_loss(logp, old, adv, torch.ones(3, 4), PolicyLossFields(cispo_epsilon_high=0.5))
    loss.sum().backward()
    w = torch.exp(logp.detach() - old).clamp(max=1.5)
    torch.testing.assert_close(logp.grad, -w * adv[:, None], rtol=0, atol=1e-15)
    assert clipped.any() and (logp.grad != 0).all()  # capped tokens keep a gradient
    ppo, _ = clipped_token_loss(logp, old, adv, 0.2, 0.5)
    (g_ppo,) = torch.autograd.grad(ppo.sum(), logp)
    assert (g_ppo == 0).any()  # where PPO's clip drops tokens


# ----------------------------------------------------------------------------- TIS / MIS


def test_sampler_correction_hand_values():
    # learner/sampler ratios 3, 0.25, 1.5 and a position without a sampler log-prob; C = 2
    sampler = torch.tensor([[-1.0, -1.0, -1.0, -1.0]])
    old = sampler + torch.log(torch.tensor([[3.0, 0.25, 1.5, 9.0]]))
    use = torch.tensor([[True, True, True, False]])
    w, ratio, corrected = sampler_correction(old, sampler, use, "tis", 2.0)
    torch.testing.assert_close(ratio, torch.tensor([[3.0, 0.25, 1.5, 1.0]]))  # not used: 1
    # TIS: min(ratio, 2) = 2, 0.25, 1.5; 1 where not used; only the 3 was truncated
    torch.testing.assert_close(w, torch.tensor([[2.0, 0.25, 1.5, 1.0]]))
    assert corrected.tolist() == [[True, False, False, False]]
    # MIS: [1/2, 2] keeps 1.5 with its ratio as weight; 3 and 0.25 are dropped (weight 0)
    w, _, corrected = sampler_correction(old, sampler, use, "mis", 2.0)
    torch.testing.assert_close(w, torch.tensor([[0.0, 0.0, 1.5, 1.0]]))
    assert corrected.tolist() == [[True, True, False, False]]
    w, _, corrected = sampler_correction(old, sampler, use, "none", 2.0)
    assert w is None and not corrected.any()
    stats = MismatchStats()
    stats.add(ratio, use, torch.tensor([[True, True, False, True]]))
    # mean (3 + 0.25 + 1.5) / 3 = 1.583333; max 3; corrected 2 of 3 measured (the unused one does not count)
    got = stats.metrics()
    assert got["mismatch_ratio_mean"] == pytest.approx(4.75 / 3, rel=1e-6)
    assert got["mismatch_ratio_max"] == pytest.approx(3.0, rel=1e-6)
    assert got["is_corrected_fraction"] == pytest.approx(2 / 3)
    assert MismatchStats().metrics() == {"mismatch_ratio_mean": None, "mismatch_ratio_max": None,
                                         "is_corrected_fraction": None}


def test_is_weights_scale_the_policy_loss_not_the_kl():
    # ratio 1, A = 1: policy loss -1 per token; weights 2 and 0.5 -> -2, -0.5; token mean (-2 - 0.5) / 2 = -1.25
    # beta 0.1, KL: token 1 equal (0), token 2 pi 0.5 vs ref 0.25: 0.5 + log 2 - 1 = 0.193147, not weighted
    logp = torch.log(torch.tensor([[0.4, 0.5]])).requires_grad_(True)
    ref = torch.log(torch.tensor([[0.4, 0.25]]))
    mask = torch.ones(1, 2)
    w = torch.tensor([[2.0, 0.5]])
    parts = grpo_loss(logp, logp.detach(), torch.tensor([1.0]), mask, BatchTotals.of(mask), beta=0.1, ref_logp=ref,
                      aggregate=token_mean, is_weights=w)
    assert parts.policy_loss == pytest.approx(-1.25, abs=1e-6)
    assert parts.loss.item() == pytest.approx((-2.5 + 0.1 * (0.5 + math.log(2) - 1)) / 2, abs=1e-6)


# ----------------------------------------------------------------------------- config


def test_config_selects_the_losses_and_refuses_bad_values():
    cfg = from_dict(GRPOJobConfig, {"grpo": {"policy_loss": "gspo", "is_correction": "tis", "is_cap": 3.0}})
    assert (cfg.grpo.policy_loss, cfg.grpo.gspo_epsilon_low, cfg.grpo.gspo_epsilon_high) == ("gspo", 3e-4, 4e-4)
    assert (cfg.grpo.is_correction, cfg.grpo.is_cap) == ("tis", 3.0)
    defaults = GRPOJobConfig().grpo
    assert (defaults.policy_loss, defaults.is_correction, defaults.cispo_epsilon_high) == ("ppo_clip", "none", 4.0)
    assert from_dict(GRPOJobConfig, {"grpo": {"policy_loss": "my_losses.py:fn"}}).grpo.policy_loss == "my_losses.py:fn"
    for bad, match in [({"policy_loss": "gpso"}, "policy_loss must be cispo, gspo, ppo_clip or module:fn"),
                       ({"is_correction": "tis2"}, "is_correction' must be one of"),
                       ({"is_cap": 0.5}, "is_cap must be >= 1"),
                       ({"gspo_epsilon_low": 1.0}, "gspo_epsilon_low must be")]:
        with pytest.raises(UserError, match=match) as e:
            from_dict(GRPOJobConfig, {"grpo": bad})
        assert "\n" not in str(e.value)


def test_a_policy_loss_module_that_does_not_import_fails_before_any_model_loads():
    cfg = from_dict(GRPOJobConfig, {"grpo": {"policy_loss": "no_such_module:my_loss"}})
    with pytest.raises(UserError, match="policy loss module 'no_such_module' cannot be imported"):
        load_inputs(cfg)
