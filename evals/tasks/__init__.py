"""Eval tasks: a rows source + a prompt builder + a scorer (a :class:`rewards.RewardSet`, so an
eval judges answers exactly as training rewards them).

Built-ins (``TASKS``): ``arithmetic``, ``gsm8k``, ``math500`` (:mod:`evals.tasks.math`),
``legal_summary``, ``unfair_tos`` (:mod:`evals.tasks.legal`), ``word_problems`` (:mod:`evals.tasks.word`),
``gym`` / ``gym:NAME`` (any reasoning-gym dataset, :mod:`evals.tasks.gym`; the optional ``rltk[gym]`` extra).
A user task is a YAML file (data path, prompt template, rewards) — see :func:`load_user_task` (:mod:`evals.tasks.user`).
Each registry entry is a factory taking the task's own options (``--task-arg key=value``);
:mod:`evals.tasks.base` defines :class:`Task` and the registry; :mod:`evals.tasks.lookup` has :func:`get_task`.

>>> task = get_task("arithmetic")
>>> rows = task.load(None)
>>> rows.rows[0]["question"], task.gold(rows.rows[0])
('What is 21 + 20?', '41')
>>> task.messages(rows.rows[0])[-1]["content"]
'What is 21 + 20?'
>>> get_task("gsm9k")
Traceback (most recent call last):
...
rltk.core.errors.UserError: unknown eval task 'gsm9k' (did you mean gsm8k?; or give module:attr / file.py:attr)
"""

from evals.tasks.base import TASKS, Task, item_hash, rows_id
from evals.tasks.gym import gym_task
from evals.tasks.lookup import get_task
from evals.tasks.legal import (
    LEGAL_SUMMARY_SYSTEM,
    UNFAIR_TOS_LABELS,
    UNFAIR_TOS_SYSTEM,
    legal_summary_task,
    unfair_tos_task,
)
from evals.tasks.math import (
    ARITHMETIC_SYSTEM,
    BOXED_SYSTEM,
    HASH_SYSTEM,
    arithmetic_task,
    gsm8k_task,
    math500_task,
    math_gold,
)
from evals.tasks.user import UserTaskConfig, load_user_task
from evals.tasks.word import word_problems_task

__all__ = [
    "ARITHMETIC_SYSTEM",
    "BOXED_SYSTEM",
    "HASH_SYSTEM",
    "LEGAL_SUMMARY_SYSTEM",
    "TASKS",
    "UNFAIR_TOS_LABELS",
    "UNFAIR_TOS_SYSTEM",
    "Task",
    "UserTaskConfig",
    "arithmetic_task",
    "get_task",
    "gym_task",
    "gsm8k_task",
    "item_hash",
    "legal_summary_task",
    "load_user_task",
    "math500_task",
    "math_gold",
    "rows_id",
    "unfair_tos_task",
    "word_problems_task",
]
