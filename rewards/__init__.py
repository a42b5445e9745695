"""Reward functions: API, built-ins (math_answer, format rules, legal_terms), safe execution.

>>> from rewards import RewardSet, RewardSpec
>>> RewardSet([RewardSpec("math_answer")]).score(["#### 1,000"], answer=["... #### 1000"]).total
[1.0]
"""

from rewards.core import REWARDS, completion_text, get_reward, report_failure, required_columns, reward
from rewards.compose import RewardScores, RewardSet, RewardSpec
import rewards.math  # noqa: F401,E402  (registers math_answer)
import rewards.formats  # noqa: F401,E402  (registers format_answer, think_format, regex, overlong, repetition)
import rewards.legal  # noqa: F401,E402  (registers legal_terms)

__all__ = [
    "REWARDS", "reward", "get_reward", "RewardSpec", "RewardSet", "RewardScores",
    "completion_text", "report_failure", "required_columns",
]
