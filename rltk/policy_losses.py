"""Per-token policy objectives, registered like the advantage estimators, and the sampler–learner mismatch
correction. :func:`rltk.loss.grpo_loss` composes one of them with the aggregation and the KL term.

Shapes: ``N`` sequences, ``T`` completion positions (right-padded; ``mask`` [N, T] marks real tokens).
Every policy loss has one signature, ``fn(logp, old_logp, advantages, mask, knobs) -> TokenLoss``:
``logp`` [N, T] (with gradient), ``old_logp`` [N, T] (no gradient), ``advantages`` [N], ``knobs`` the
``grpo:`` section (a :class:`PolicyLossFields`). It returns the loss of every position, padding included
(the aggregation masks it), and where its clip is active. ``grpo.policy_loss`` picks one by name
(``ppo_clip``, ``gspo``, ``cispo``) or as ``module:fn`` / ``file.py:fn`` with the same signature.

On-policy with ``mu: 1`` the old log-probs are the current ones (ratio 1, see :mod:`rltk.learner`): then the
three losses have the same gradient, ``-A ∇logp`` per token. They differ where the ratio moves: ``mu > 1``
and stale (pipelined) rollouts.

>>> logp = torch.tensor([[-1.0, -2.0]]); adv = torch.tensor([1.0]); mask = torch.ones(1, 2)
>>> cispo_token_loss(logp, logp - 0.5, adv, mask, PolicyLossFields(cispo_epsilon_high=0.2)).loss   # weight min(e^0.5, 1.2)
tensor([[1.2000, 2.4000]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple

import torch

from rltk.core.config import check_range
from rltk.core.registry import Registry, resolve_callable


@dataclass(frozen=True)
class PolicyLossFields:
    """The policy loss's knobs and the mismatch correction's, declared once (:class:`rltk.loss.LossFields` extends it)."""

    policy_loss: str = "ppo_clip"  # ppo_clip | gspo | cispo | module:fn
    epsilon_low: float = 0.2  # ppo_clip: the token ratio's clip range
    epsilon_high: float = 0.2  # > epsilon_low = DAPO's clip-higher
    gspo_epsilon_low: float = 3e-4  # gspo: the sequence ratio's clip range (the GSPO paper's values)
    gspo_epsilon_high: float = 4e-4
    cispo_epsilon_high: float = 4.0  # cispo: its IS weight is capped at 1 + this (no lower bound)
    is_correction: Literal["none", "tis", "mis"] = "none"  # sampler-learner mismatch correction
    is_cap: float = 2.0  # C: tis truncates the weight at C, mis drops tokens whose ratio is outside [1/C, C]

    def __post_init__(self) -> None:
        if self.policy_loss not in POLICY_LOSSES and ":" not in self.policy_loss:
            raise ValueError(f"policy_loss must be {', '.join(POLICY_LOSSES.names())} or module:fn, got {self.policy_loss!r}")
        check_range("epsilon_low", self.epsilon_low, low=0, high=1, high_open=True)
        check_range("epsilon_high", self.epsilon_high, low=0)
        check_range("gspo_epsilon_low", self.gspo_epsilon_low, low=0, high=1, high_open=True)
        check_range("gspo_epsilon_high", self.gspo_epsilon_high, low=0)
        check_range("cispo_epsilon_high", self.cispo_epsilon_high, low=0)
        check_range("is_cap", self.is_cap, low=1)


class TokenLoss(NamedTuple):
    loss: torch.Tensor  # [N, T] per-token loss (padding positions included; the aggregation masks them)
    clipped: torch.Tensor  # [N, T] bool: the clip is active (ppo_clip, gspo: no gradient there; cispo: weight capped)


PolicyLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, PolicyLossFields], TokenLoss]
BoundPolicyLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], TokenLoss]
POLICY_LOSSES: Registry[PolicyLoss] = Registry("policy loss")


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, epsilon_low: float,
                      epsilon_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``-min(ρ·A, clip(ρ, 1-ε_low, 1+ε_high)·A)`` per position, for any ratio ``ρ`` [N, T] and ``A`` [N].
    Returns (loss [N, T], clipped [N, T] bool: the clip is active, so this position has no gradient)."""
    adv = advantages[:, None]  # [N, 1]
    unclipped = ratio * adv  # [N, T]
    clipped = torch.clamp(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high) * adv  # [N, T]
    loss = -torch.minimum(unclipped, clipped)  # [N, T]
    is_clipped = ((ratio < 1.0 - epsilon_low) & (adv < 0)) | ((ratio > 1.0 + epsilon_high) & (adv > 0))  # [N, T]
    return loss, is_clipped


def clipped_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, epsilon_low: float,
                       epsilon_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token ``-min(ρ·A, clip(ρ, 1-ε_low, 1+ε_high)·A)`` with ``ρ = exp(logp - old_logp)``: PPO's clipped
    surrogate as GRPO uses it, with separate ``epsilon_low`` / ``epsilon_high`` ("clip-higher", DAPO:
    Yu et al. 2025, arXiv:2503.14476). ``logp``, ``old_logp`` [N, T]; ``advantages`` [N] (one per sequence,
    broadcast over its tokens). Returns (loss [N, T], clipped [N, T] bool)."""
    return clipped_surrogate(torch.exp(logp - old_logp), advantages, epsilon_low, epsilon_high)  # ratio [N, T]


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                  knobs: PolicyLossFields) -> TokenLoss:
    """The default: PPO's clipped surrogate on each token's ratio (:func:`clipped_token_loss`), ``epsilon_low`` /
    ``epsilon_high``."""
    return TokenLoss(*clipped_token_loss(logp, old_logp, advantages, knobs.epsilon_low, knobs.epsilon_high))


@POLICY_LOSSES.register("gspo")
def gspo_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                    knobs: PolicyLossFields) -> TokenLoss:
    """GSPO (Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv:2507.18071): one importance ratio per
    sequence, length-normalised, ``s_i = exp(mean_t (logp - old_logp))`` over its real tokens, clipped as a whole
    with the paper's small range (``gspo_epsilon_low`` 3e-4, ``gspo_epsilon_high`` 4e-4).

    Written in the paper's GSPO-token form (its eq. 13): every token of sequence ``i`` carries the value ``s_i``
    and the gradient ``s_i ∇logp_t`` (``sg[s_i] · π/sg[π]``), so the clip decision is the sequence's and the loss
    composes with any aggregation. With ``loss_agg: sequence`` (mean over a sequence's tokens, then over
    sequences) the gradient is GSPO's, ``-A_i ∇s_i``; ``token`` / ``constant`` weigh each sequence by its length.
    """
    tokens = mask.sum(dim=1).clamp(min=1)  # [N]
    log_seq = ((logp - old_logp) * mask).sum(dim=1) / tokens  # [N] log s_i
    log_tok = log_seq.detach()[:, None] + logp - logp.detach()  # [N, T] value log s_i, gradient ∇logp_t
    return TokenLoss(*clipped_surrogate(torch.exp(log_tok), advantages, knobs.gspo_epsilon_low, knobs.gspo_epsilon_high))


@POLICY_LOSSES.register("cispo")
def cispo_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                     knobs: PolicyLossFields) -> TokenLoss:
    """CISPO (MiniMax 2025, "MiniMax-M1", arXiv:2506.13585, eq. 4): ``-sg(min(ρ, 1 + ε_high)) · A · logp`` per
    token. The importance weight is clipped and detached, so no token loses its gradient (PPO's clip drops the
    tokens whose ratio left the range, often the rare "fork" tokens); the gradient is ``-w · A · ∇logp``.

    No lower bound, as in the paper (it tunes only the upper one and does not publish it); implementations cap
    the weight at 4 to 6 (ScaleRL, Khatri et al. 2025, arXiv:2510.13786, uses CISPO): ``cispo_epsilon_high`` 4.0,
    a cap of 5. The loss's *value* is ``-w·A·logp``, not a surrogate near ``-A``: compare its gradient, not its
    value, with the other losses'."""
    ratio = torch.exp(logp.detach() - old_logp)  # [N, T]
    weight = ratio.clamp(max=1.0 + knobs.cispo_epsilon_high)  # [N, T] no gradient
    return TokenLoss(-weight * advantages[:, None] * logp, ratio > 1.0 + knobs.cispo_epsilon_high)


def bind_policy_loss(knobs: PolicyLossFields) -> BoundPolicyLoss:
    """``knobs.policy_loss`` (a registered name or ``module:fn``) with its knobs bound:
    ``(logp, old_logp, advantages, mask) -> TokenLoss``."""
    fn = resolve_callable(knobs.policy_loss, POLICY_LOSSES, "policy loss")

    def bound(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> TokenLoss:
        return fn(logp, old_logp, advantages, mask, knobs)

    return bound


# ----------------------------------------------------------------------------- sampler-learner mismatch


def truncated_is(ratio: torch.Tensor, cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """TIS: weight ``min(ρ, C)`` per token (Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You
    Off-Policy RL Training", https://fengyao.notion.site/off-policy-rl). Returns (weights [N, T], truncated [N, T])."""
    return ratio.clamp(max=cap), ratio > cap


def masked_is(ratio: torch.Tensor, cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MIS, per token: weight ``ρ`` where ``1/C <= ρ <= C``, else 0 (the token is dropped from the loss; it still
    counts in the batch's normaliser). Masked importance sampling is from Liu, Li et al. 2025, "When Speed Kills
    Stability: Demystifying RL Collapse from the Training-Inference Mismatch" (https://richardli.xyz/rl-collapse),
    who mask whole sequences whose ratio exceeds C; here tokens are masked, on both sides of 1 (as verl's
    token-level rejection with a lower threshold of 1/C). Returns (weights [N, T], dropped [N, T])."""
    inside = (ratio >= 1.0 / cap) & (ratio <= cap)  # [N, T]
    return torch.where(inside, ratio, torch.zeros_like(ratio)), ~inside


IS_CORRECTIONS: Registry[Callable[[torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]] = Registry("is correction")
IS_CORRECTIONS.register("tis", truncated_is)
IS_CORRECTIONS.register("mis", masked_is)


def sampler_correction(old_logp: torch.Tensor, sampler_logp: torch.Tensor, use: torch.Tensor, kind: str,
                       cap: float) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """The sampler–learner mismatch of each token, ``ρ = exp(old_logp - sampler_logp)`` = π_learner / π_sampler
    (1 where ``use`` [N, T] is False), and the detached weights [N, T] that correct the policy loss for it
    (``kind``: ``tis`` or ``mis``; None for ``none``; 1 where not used). Returns (weights, ρ, corrected [N, T]).

    The two differ even on-policy: the sampler runs a merged dense copy at the compute dtype (and samples after
    top-k / top-p, whose log-probs are those of the filtered distribution), the learner base + LoRA.
    """
    ratio = torch.exp((old_logp - sampler_logp).masked_fill(~use, 0.0))  # [N, T]
    if kind == "none":
        return None, ratio, torch.zeros_like(use)
    weights, corrected = IS_CORRECTIONS.get(kind)(ratio, cap)  # [N, T], [N, T]
    return torch.where(use, weights, torch.ones_like(weights)), ratio, corrected & use


@dataclass
class MismatchStats:
    """A step's sampler–learner mismatch, summed over the tokens measured (``metrics.jsonl``)."""

    ratio_sum: float = 0.0
    ratio_max: float = 0.0
    tokens: int = 0
    corrected: int = 0  # tokens whose weight tis truncated or mis dropped

    def add(self, ratio: torch.Tensor, use: torch.Tensor, corrected: torch.Tensor) -> None:
        n = int(use.sum())
        if n:
            r = ratio[use]  # [n]
            self.ratio_sum += float(r.sum())
            self.ratio_max = max(self.ratio_max, float(r.max()))
            self.tokens += n
            self.corrected += int((corrected & use).sum())

    def metrics(self) -> dict[str, float | None]:
        """``mismatch_ratio_mean`` / ``_max`` (π_learner / π_sampler per token) and ``is_corrected_fraction``;
        None when no token was measured."""
        n = self.tokens
        return {"mismatch_ratio_mean": self.ratio_sum / n if n else None, "mismatch_ratio_max": self.ratio_max if n else None,
                "is_corrected_fraction": self.corrected / n if n else None}


__all__ = [
    "IS_CORRECTIONS",
    "POLICY_LOSSES",
    "BoundPolicyLoss",
    "MismatchStats",
    "PolicyLoss",
    "PolicyLossFields",
    "TokenLoss",
    "bind_policy_loss",
    "cispo_token_loss",
    "clipped_surrogate",
    "clipped_token_loss",
    "gspo_token_loss",
    "masked_is",
    "ppo_clip_loss",
    "sampler_correction",
    "truncated_is",
]
