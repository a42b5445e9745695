"""Reward functions: API, built-ins (math_answer, step_check, format rules, legal_terms, reward_model), safe execution.

>>> from rewards import RewardSet, RewardSpec
>>> RewardSet([RewardSpec("math_answer")]).score(["#### 1,000"], answer=["... #### 1000"]).total
[1.0]
"""

from rewards.core import (REWARDS, RewardCall, collect_details, completion_text, get_reward, is_conversational, report_detail,
                          report_failure, required_columns, reward)
from rewards.compose import RewardScores, RewardSet, RewardSpec
import rewards.math  # noqa: F401,E402  (registers math_answer)
import rewards.formats  # noqa: F401,E402  (registers format_answer, think_format, regex, overlong, repetition)
from rewards.steps import Step, StepReport, check_steps  # noqa: E402  (registers step_check)
import rewards.legal  # noqa: F401,E402  (registers legal_terms)
import rewards.summary  # noqa: F401,E402  (registers summary_shape, no_copy, legal_summary)
import rewards.gym  # noqa: F401,E402  (registers gym_score; reasoning-gym itself loads on first use)
import rewards.reward_model  # noqa: F401,E402  (registers reward_model; torch and transformers load on first use)

__all__ = [
    "REWARDS", "reward", "get_reward", "RewardSpec", "RewardSet", "RewardScores",
    "completion_text", "report_failure", "required_columns", "RewardCall", "is_conversational",
    "report_detail", "collect_details", "Step", "StepReport", "check_steps",
]
