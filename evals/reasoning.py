"""Reasoning metrics: are a completion's arithmetic steps true (:func:`rewards.steps.check_steps`), and
did a right answer come from sound steps?

Per sample (:func:`step_fields`): ``steps`` (arithmetic claims found), ``steps_valid`` (claims that hold),
``reasoning_valid`` (at least one step, and every step holds: a completion that shows no step has no
reasoning to call valid) and ``lucky`` (the final answer is right and at least one step is false).
Per run (:func:`evals.metrics.reasoning_metrics`): the shares of samples with valid reasoning and with lucky answers
(95% intervals), steps per completion, and the share of completions that show any step. Per item
(:data:`ITEM_SCORES`): the mean of its samples, what ``rltk eval compare`` pairs.

>>> f = step_fields("Speed = 120 / 40 = 3\\n#### 3", correct=True)
>>> f["steps"], f["steps_valid"], f["reasoning_valid"], f["lucky"]
(1, 1, True, False)
>>> step_fields("Speed = 120 / 40 = 4\\n#### 3", correct=True)["lucky"]
True
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from evals.compare import Comparison, compare
from evals.result import EvalResult
from rewards.steps import check_steps


def step_fields(text: str, correct: bool | None) -> dict[str, Any]:
    """The step check of one completion, as the fields of its sample record."""
    rep = check_steps(text)
    false_step = rep.n_valid < rep.n
    return {
        "steps": rep.n,
        "steps_valid": rep.n_valid,
        "reasoning_valid": rep.all_valid,
        "lucky": None if correct is None else bool(correct and false_step),
        "step_errors": [s.reason for s in rep.steps if not s.ok][:3],
    }


def _item_mean(key: str) -> Callable[[dict[str, Any]], float | None]:
    def score(record: dict[str, Any]) -> float | None:
        vals = [s.get(key) for s in record.get("samples", [])]
        if not vals or any(v is None for v in vals):
            return None
        return sum(float(v) for v in vals) / len(vals)

    score.__name__ = key
    return score


# name -> (per-item score, lower is better): the reasoning comparisons of ``rltk eval compare``
ITEM_SCORES: dict[str, tuple[Callable[[dict[str, Any]], float | None], bool]] = {
    "reasoning validity": (_item_mean("reasoning_valid"), False),
    "lucky answers": (_item_mean("lucky"), True),
}


def reasoning_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows of an eval table for the metrics' ``reasoning`` entry (none when absent)."""
    r = m.get("reasoning")
    if not r:
        return []

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    rows = [("reasoning validity", f"{pct(r['validity'])}  95% CI [{100 * r['validity_ci'][0]:.1f}, "
                                   f"{100 * r['validity_ci'][1]:.1f}] (every step true, at least one step)")]
    if r.get("lucky") is not None:
        rows.append(("lucky answers", f"{pct(r['lucky'])} (right answer, a false step; {pct(r['lucky_of_correct'])} of right answers)"))
    rows.append(("steps per completion", f"{r['steps_per_completion']:.2f} ({pct(r['shows_steps'])} show a step; "
                                         f"{pct(r['step_accuracy'])} of steps true)"))
    return rows


def compare_reasoning(a: EvalResult, b: EvalResult, **kwargs: Any) -> list[Comparison]:
    """Paired comparisons of ``b`` against ``a`` on reasoning validity and lucky answers (``kwargs`` as for
    :func:`evals.compare.compare`); empty when either run lacks the step checks (a result from before them)."""
    if not all(s.get("steps") is not None for r in (a, b) for rec in r.records for s in rec.get("samples", [])):
        return []
    out = []
    for name, (score, lower) in ITEM_SCORES.items():
        if any(score(rec) is None for r in (a, b) for rec in r.records):
            continue  # e.g. lucky answers of a graded task: no right/wrong answer
        out.append(compare(a, b, item_score=score, metric=name, lower_is_better=lower, **kwargs))
    return out
