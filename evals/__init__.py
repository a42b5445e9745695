"""Evals: reasoning tasks, metrics with honest statistics, comparisons, reports.

Library API (the CLI ``rltk eval`` is a thin layer over it)::

    from evals import evaluate, compare, get_task, load_result
    a = evaluate(policy, "arithmetic", limit=300)              # greedy accuracy + Wilson CI
    b = evaluate(other_policy, "arithmetic", limit=300)
    print(compare(a, b).verdict)                              # exact McNemar on the same items

The package, in the order a run goes: :mod:`evals.tasks` (what to ask, how to score),
:mod:`evals.items` (which rows, few-shot demos), :mod:`evals.generation` (batched decoding),
:mod:`evals.records` (scores per item), :mod:`evals.metrics` (the summary), :mod:`evals.result`
(the result file), :mod:`evals.run` (:func:`evaluate`, the steps together), :mod:`evals.compare`
and :mod:`evals.stats` (paired tests), :mod:`evals.report` (tables, Markdown),
:mod:`evals.cli` / :mod:`evals.commands` (``rltk eval``).

Names that need torch or the rewards (``evaluate``, ``generate``, the tasks) are imported on first
use, so ``import evals.cli`` (every ``rltk`` command) stays light.
"""

import importlib
from typing import Any

# light: imported now (``compare`` must be: the submodule evals.compare would shadow the function)
from evals.compare import Comparison, compare
from evals.metrics import compute_metrics, majority_at_k, pass_at_k, wilson_interval
from evals.result import EvalResult, load_result
from evals.stats import mcnemar_exact, paired_bootstrap

# heavy (torch, the rewards): name -> module, imported by __getattr__ on first use
_LAZY = {
    "Completion": "evals.generation",
    "GenerationSettings": "evals.generation",
    "generate": "evals.generation",
    "evaluate": "evals.run",
    "TASKS": "evals.tasks",
    "Task": "evals.tasks",
    "get_task": "evals.tasks",
    "load_user_task": "evals.tasks",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'evals' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
