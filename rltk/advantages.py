"""Advantage estimators: pure functions from a ``[B, G]`` reward table to a ``[B, G]`` advantage table.

Row ``b`` holds the rewards of the ``G`` completions sampled for prompt ``b`` (one *group*).
Every estimator gives exactly zero advantage to a group whose rewards are all equal: such a
group carries no learning signal (and :func:`zero_variance_groups` finds them, for dynamic
sampling and for the "no signal" warning).

>>> r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
>>> group_relative_advantages(r, eps=0.0)
tensor([[ 0.8660, -0.8660, -0.8660,  0.8660],
        [ 0.0000,  0.0000,  0.0000,  0.0000]])
>>> group_relative_advantages(r, scale_by_std=False)   # Dr. GRPO
tensor([[ 0.5000, -0.5000, -0.5000,  0.5000],
        [ 0.0000,  0.0000,  0.0000,  0.0000]])
>>> rloo_advantages(r)
tensor([[ 0.6667, -0.6667, -0.6667,  0.6667],
        [ 0.0000,  0.0000,  0.0000,  0.0000]])
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from rltk.core.registry import Registry

AdvantageFn = Callable[[torch.Tensor], torch.Tensor]  # rewards [B, G] -> advantages [B, G]
ADVANTAGES: Registry[AdvantageFn] = Registry("advantage estimator")


def zero_variance_groups(rewards: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``[B]`` bool: groups whose ``G`` rewards are all equal (exactly, not up to rounding). With ``valid``
    (``[B, G]`` bool: the samples whose rewards were scored) only those count; a group with fewer than two
    is flat too (nothing to compare)."""
    if valid is None:
        return rewards.amax(dim=1) == rewards.amin(dim=1)  # [B]
    hi = rewards.masked_fill(~valid, float("-inf")).amax(dim=1)  # [B]
    lo = rewards.masked_fill(~valid, float("inf")).amin(dim=1)  # [B]
    return hi <= lo


def _zero_constant_groups(adv: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    # (r - mean) of equal rewards can be ±1 ulp instead of 0 (e.g. three times 0.1); make it exact
    return adv.masked_fill(zero_variance_groups(rewards)[:, None], 0.0)  # [B, G]


def group_relative_advantages(rewards: torch.Tensor, scale_by_std: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's group-relative advantage ``(r - mean_group) / (std_group + eps)``.

    ``std`` is the sample standard deviation (``G - 1`` in the denominator), as in the GRPO
    paper's implementation (Shao et al. 2024, DeepSeekMath, arXiv:2402.03300) and TRL.
    ``scale_by_std=False`` is **Dr. GRPO** (Liu et al. 2025, "Understanding R1-Zero-Like
    Training: A Critical Perspective", arXiv:2503.20783): dividing by the group's std weights
    easy and hard prompts (low std) more than the others, a difficulty bias; it keeps ``r - mean``.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [B, G], got shape {tuple(rewards.shape)}")
    centered = rewards - rewards.mean(dim=1, keepdim=True)  # [B, G]
    if scale_by_std:
        if rewards.shape[1] < 2:
            raise ValueError("group-relative advantages scaled by std need groups of at least 2")
        centered = centered / (rewards.std(dim=1, keepdim=True) + eps)  # [B, G]
    return _zero_constant_groups(centered, rewards)


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE leave-one-out (Ahmadian et al. 2024, arXiv:2402.14740): each completion's baseline
    is the mean reward of the *other* ``G - 1`` completions of its prompt.
    ``r_i - (sum - r_i) / (G - 1)`` equals ``G / (G - 1) * (r_i - mean)``."""
    g = rewards.shape[1]
    if g < 2:
        raise ValueError("RLOO needs groups of at least 2 completions")
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (g - 1)  # [B, G]
    return _zero_constant_groups(rewards - baseline, rewards)


def batch_std_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Group mean as baseline, standard deviation of the whole batch as scale ("Lite PPO":
    Liu et al. 2025, "Tricks or Traps? A Deep Dive into RL for LLM Reasoning", arXiv:2508.08221).
    More robust than the group std when rewards are sparse: a group with one lucky success is
    not blown up by a tiny group std."""
    centered = rewards - rewards.mean(dim=1, keepdim=True)  # [B, G]
    scale = rewards.flatten().std() if rewards.numel() > 1 else rewards.new_tensor(0.0)  # []
    return _zero_constant_groups(centered / (scale + eps), rewards)


def _batch_std_masked(rewards: torch.Tensor, valid: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """:func:`batch_std_advantages` over the valid samples only (group means and the batch std of those)."""
    vals = rewards[valid]
    scale = vals.std() if vals.numel() > 1 else rewards.new_tensor(0.0)
    out = torch.zeros_like(rewards)
    for b in range(rewards.shape[0]):
        idx = valid[b].nonzero().flatten()
        r = rewards[b, idx]
        if idx.numel() >= 2 and bool(r.amax() > r.amin()):
            out[b, idx] = (r - r.mean()) / (scale + eps)
    return out


batch_std_advantages.masked = _batch_std_masked  # type: ignore[attr-defined]

ADVANTAGES.register("grpo", group_relative_advantages)
ADVANTAGES.register("dr_grpo", functools.partial(group_relative_advantages, scale_by_std=False))
ADVANTAGES.register("rloo", rloo_advantages)
ADVANTAGES.register("batch_std", batch_std_advantages)


def compute_advantages(name: str, rewards: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Advantages ``[B, G]`` by estimator name (``grpo``, ``dr_grpo``, ``rloo``, ``batch_std``) or ``module:fn``.

    ``valid`` (``[B, G]`` bool) marks the samples whose rewards were scored; the others (a reward failed on
    them) get advantage 0 and take no part in their group's statistics: each group's advantages are those of
    its valid samples alone (a group with fewer than two valid samples gets none). A batch-level estimator
    masks itself (its ``masked`` attribute).

    >>> r = torch.tensor([[1.0, 0.0, 5.0, 1.0]]); ok = torch.tensor([[True, True, False, True]])
    >>> compute_advantages("dr_grpo", r, ok)   # the failed sample's 5.0 is not part of the mean
    tensor([[ 0.3333, -0.6667,  0.0000,  0.3333]])
    """
    fn = ADVANTAGES.get(name)
    if valid is None or bool(valid.all()):
        return fn(rewards)
    masked = getattr(fn, "masked", None)
    if masked is not None:
        return masked(rewards, valid)
    out = torch.zeros_like(rewards)
    for b in range(rewards.shape[0]):
        idx = valid[b].nonzero().flatten()
        if idx.numel() >= 2:
            out[b, idx] = fn(rewards[b, idx].unsqueeze(0))[0]
    return out


__all__ = [
    "ADVANTAGES",
    "batch_std_advantages",
    "compute_advantages",
    "group_relative_advantages",
    "rloo_advantages",
    "zero_variance_groups",
]
