"""Evals: reasoning tasks, metrics with honest statistics, comparisons, reports.

Library API (the CLI ``rltk eval`` is a thin layer over it)::

    from evals import evaluate, compare, get_task, load_result
    a = evaluate(policy, "arithmetic", limit=300)              # greedy accuracy + Wilson CI
    b = evaluate(other_policy, "arithmetic", limit=300)
    print(compare(a, b).verdict)                              # exact McNemar on the same items
"""

from evals.compare import Comparison, compare
from evals.generation import Completion, GenerationSettings, generate
from evals.metrics import majority_at_k, pass_at_k, wilson_interval
from evals.run import EvalResult, compute_metrics, evaluate, load_result
from evals.stats import mcnemar_exact, paired_bootstrap
from evals.tasks import TASKS, Task, get_task, load_user_task

__all__ = [
    "TASKS",
    "Comparison",
    "Completion",
    "EvalResult",
    "GenerationSettings",
    "Task",
    "compare",
    "compute_metrics",
    "evaluate",
    "generate",
    "get_task",
    "load_result",
    "load_user_task",
    "majority_at_k",
    "mcnemar_exact",
    "paired_bootstrap",
    "pass_at_k",
    "wilson_interval",
]
