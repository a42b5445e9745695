"""Rollouts: sampling G completions per prompt (:mod:`.worker`), the backends the GRPO loop talks to
(:mod:`.backend`: in-process or Ray), and the Ray layer (:mod:`.ray_rollouts`, :mod:`.ray_worker`,
:mod:`.ray_shares`, :mod:`.ray_rewards`, :mod:`.ray_session`).
"""

from rltk.rollouts.backend import LocalRollouts, RolloutBackend, make_backend
from rltk.rollouts.config import DistributedConfig
from rltk.rollouts.worker import PromptRequest, RolloutGroup, RolloutWorker, SamplingConfig

__all__ = ["DistributedConfig", "LocalRollouts", "PromptRequest", "RolloutBackend", "RolloutGroup", "RolloutWorker",
           "SamplingConfig", "make_backend"]
