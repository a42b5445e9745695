"""The GRPO loss as three small pure functions: per-token objective, KL estimator, aggregation.

Shapes: ``N`` sequences (completions) in a micro-batch, ``T`` completion positions (right-padded;
``mask`` marks real tokens).

* the per-token policy objective, from :mod:`rltk.policy_losses` (``grpo.policy_loss``): by default
  :func:`clipped_token_loss`, PPO's clipped surrogate with separate ``epsilon_low`` / ``epsilon_high``
  ("clip-higher", DAPO: Yu et al. 2025, arXiv:2503.14476); or GSPO, CISPO, ``module:fn``; optionally weighted
  per token against the sampler–learner mismatch (``grpo.is_correction``: TIS / MIS).
* :func:`k3_kl` — Schulman's k3 estimator of KL(π_θ ‖ π_ref), unbiased and always >= 0.
* aggregation: :func:`sequence_mean` (GRPO paper), :func:`token_mean` (DAPO),
  :func:`constant_normalizer` (Dr. GRPO). Each takes the totals of the *whole* batch
  (:class:`BatchTotals`), so the sum of micro-batch losses is exactly the full-batch loss
  whatever the micro-batch size, and sequences skipped from a micro-batch (zero advantage,
  beta 0: their loss and gradient are exactly zero) still count in the normaliser.

>>> logp = torch.tensor([[-1.0, -2.0]]); adv = torch.tensor([1.0]); mask = torch.ones(1, 2)
>>> per_token, clipped = clipped_token_loss(logp, logp.detach(), adv, 0.2, 0.2)
>>> per_token, clipped   # ratio 1: loss is -A per token, nothing clipped
(tensor([[-1., -1.]]), tensor([[False, False]]))
>>> float(token_mean(per_token, mask, BatchTotals.of(mask)))
-1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch

from rltk.core.config import check_range
from rltk.core.registry import Registry
from rltk.policy_losses import BoundPolicyLoss, PolicyLossFields, clipped_token_loss


@dataclass(frozen=True)
class LossFields(PolicyLossFields):
    """The knobs of the GRPO objective, declared once (the ``grpo:`` section extends this class): the policy loss
    and its mismatch correction (:class:`rltk.policy_losses.PolicyLossFields`), and these."""

    beta: float = 0.0  # KL weight (k3); 0 = no reference forward at all
    loss_agg: Literal["sequence", "token", "constant"] = "sequence"
    mu: int = 1  # optimizer steps per batch of rollouts (stored old log-probs)

    def __post_init__(self) -> None:
        PolicyLossFields.__post_init__(self)
        check_range("beta", self.beta, low=0)
        check_range("mu", self.mu, low=1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π_θ ‖ π_ref) on tokens sampled from π_θ:
    ``exp(ref - logp) - (ref - logp) - 1`` (Schulman 2020, "Approximating KL divergence";
    the GRPO paper's eq. 4). Zero where the two policies agree, positive elsewhere. [N, T]"""
    delta = ref_logp - logp  # [N, T]
    return torch.exp(delta) - delta - 1.0


@dataclass(frozen=True)
class BatchTotals:
    """Normalisers of the whole (accumulated) batch."""

    sequences: int  # sequences in the batch (those with at least one unmasked token)
    tokens: int  # unmasked completion tokens in the batch
    max_tokens: int  # the constant of Dr. GRPO: max_new_tokens (the generation budget)

    @classmethod
    def of(cls, mask: torch.Tensor, max_tokens: int | None = None) -> "BatchTotals":
        """Totals of one full-batch mask [N, T]."""
        return cls(int((mask.sum(dim=1) > 0).sum()), int(mask.sum()), int(max_tokens if max_tokens is not None else mask.shape[1]))


def sequence_mean(per_token: torch.Tensor, mask: torch.Tensor, totals: BatchTotals) -> torch.Tensor:
    """GRPO paper: mean over each sequence's tokens, then mean over sequences (long completions'
    tokens weigh less, which Dr. GRPO calls a length bias)."""
    per_seq = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)  # [N]
    return per_seq.sum() / max(totals.sequences, 1)


def token_mean(per_token: torch.Tensor, mask: torch.Tensor, totals: BatchTotals) -> torch.Tensor:
    """DAPO: every token of the batch weighs the same (sum over tokens / tokens in the batch)."""
    return (per_token * mask).sum() / max(totals.tokens, 1)


def constant_normalizer(per_token: torch.Tensor, mask: torch.Tensor, totals: BatchTotals) -> torch.Tensor:
    """Dr. GRPO: sum over tokens divided by a constant, ``sequences × max_tokens``, so neither the
    length of a completion nor of the batch rescales the gradient (Liu et al. 2025, arXiv:2503.20783)."""
    return (per_token * mask).sum() / max(totals.sequences * totals.max_tokens, 1)


Aggregation = Callable[[torch.Tensor, torch.Tensor, BatchTotals], torch.Tensor]
AGGREGATIONS: Registry[Aggregation] = Registry("loss aggregation")
AGGREGATIONS.register("sequence", sequence_mean)
AGGREGATIONS.register("token", token_mean)
AGGREGATIONS.register("constant", constant_normalizer)


@dataclass
class LossParts:
    loss: torch.Tensor  # [] this micro-batch's share of the batch loss (with gradient)
    policy_loss: float  # share of the clipped-surrogate part
    kl_sum: float  # sum of k3 KL over this micro-batch's unmasked tokens (0 when beta is 0)
    clipped_tokens: int
    tokens: int


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    totals: BatchTotals,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    aggregate: Aggregation = sequence_mean,
    policy_loss: BoundPolicyLoss | None = None,
    is_weights: torch.Tensor | None = None,
) -> LossParts:
    """Per-token policy loss (+ ``beta`` × k3 KL when ``beta > 0``), aggregated over a micro-batch.

    ``logp``, ``old_logp``, ``ref_logp``, ``mask``, ``is_weights``: [N, T]; ``advantages``: [N].
    ``policy_loss``: the per-token objective with its knobs bound (:func:`rltk.policy_losses.bind_policy_loss`);
    None = PPO's clipped surrogate with ``epsilon_low`` / ``epsilon_high``. ``is_weights`` (detached, e.g. TIS's
    truncated sampler–learner ratios) multiply the policy loss of each token, not the KL term.
    """
    if policy_loss is None:
        per_token, clipped = clipped_token_loss(logp, old_logp, advantages, epsilon_low, epsilon_high)  # [N, T]
    else:
        per_token, clipped = policy_loss(logp, old_logp, advantages, mask)  # [N, T]
    if is_weights is not None:
        per_token = per_token * is_weights  # [N, T]
    policy = aggregate(per_token, mask, totals)  # []
    kl_sum = 0.0
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs the reference log-probs")
        kl = k3_kl(logp, ref_logp)  # [N, T]
        total = aggregate(per_token + beta * kl, mask, totals)
        kl_sum = float((kl.detach() * mask).sum())
    else:
        total = policy
    m = mask.bool()
    return LossParts(total, float(policy.detach()), kl_sum, int((clipped & m).sum()), int(m.sum()))


__all__ = [
    "AGGREGATIONS",
    "BatchTotals",
    "LossParts",
    "clipped_token_loss",
    "constant_normalizer",
    "grpo_loss",
    "k3_kl",
    "sequence_mean",
    "token_mean",
]
