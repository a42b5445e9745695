"""What a GRPO run reads before any model: its prompts and rewards, loaded and checked (:func:`load_inputs`)."""

from __future__ import annotations

from dataclasses import dataclass

from rewards import RewardSet
from rltk.core.errors import UserError
from rltk.data import Dataset, load_dataset
from rltk.grpo.config import GRPOJobConfig
from rltk.policy_losses import bind_policy_loss


@dataclass(frozen=True)
class Inputs:
    """GRPO's prompts and rewards, loaded and checked (``from_config``: the rewards were built from ``cfg.rewards``)."""
    data: Dataset
    reward_set: RewardSet
    from_config: bool


def load_inputs(cfg: GRPOJobConfig, reward_set: RewardSet | None = None) -> Inputs:
    """Data and rewards first: a bad row, source, reward or ``policy_loss`` module fails before any model is loaded
    (the job calls this before its evals and SFT warm start, so it fails in seconds, not after them)."""
    bind_policy_loss(cfg.grpo)
    data = load_dataset(cfg.data)
    data.check_for_prompts()
    from_config = reward_set is None
    if reward_set is None:
        if not cfg.rewards:
            raise UserError("rewards: the config lists no rewards (add e.g. '- name: math_answer')")
        reward_set = RewardSet(list(cfg.rewards), timeout_s=cfg.reward_timeout_s, **cfg.reward_sandbox.options())
    data.check_rewards(reward_set)
    return Inputs(data, reward_set, from_config)


__all__ = ["Inputs", "load_inputs"]
