"""A task's own per-sample metrics (e.g. the legal ones, :mod:`evals.legal_metrics`), beside its score.

A task with ``sample_metrics`` gives each sample a ``metrics`` mapping (name -> number or None: not
applicable). A run's summary holds, per metric, the mean over items of each item's sample mean, with a 95%
interval (:func:`summarise`); ``rltk eval compare`` and a job's summary pair the runs item by item on each
(:func:`compare_task_metrics`), over the items where both runs have the metric. How each metric reads
(title, which direction is better, percent or plain) is declared in :data:`METRICS` by the module that
computes it.

>>> recs = [{"id": "a", "samples": [{"metrics": {"copy_rate": 0.0}}, {"metrics": {"copy_rate": 0.5}}]},
...         {"id": "b", "samples": [{"metrics": {"copy_rate": 1.0}}, {"metrics": {"copy_rate": None}}]}]
>>> s = summarise(recs)["copy_rate"]
>>> s["mean"], s["n_items"]
(0.625, 2)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from evals.compare import Comparison, compare
from evals.metrics import item_value, names_in, summarise  # noqa: F401 (summarise: doctest; the summary is the run's)
from evals.result import EvalResult


@dataclass(frozen=True)
class MetricInfo:
    title: str
    lower_is_better: bool = False
    percent: bool = True  # shown as a percentage (a share or a score in [0, 1])
    note: str = ""


METRICS: dict[str, MetricInfo] = {}  # name -> how it reads; filled by the modules that compute metrics


def _show(name: str, x: float) -> str:
    info = METRICS.get(name, MetricInfo(name, percent=False))
    return f"{100 * x:.1f}%" if info.percent else f"{x:.3f}"


def metric_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, value) rows of an eval table for a run's task metrics (none when absent)."""
    rows = []
    for name, v in (m.get("task_metrics") or {}).items():
        info = METRICS.get(name, MetricInfo(name, percent=False))
        lo, hi = v["ci"]
        note = f"; {info.note}" if info.note else ""
        rows.append((info.title, f"{_show(name, v['mean'])}  95% CI [{_show(name, lo)}, {_show(name, hi)}] "
                                 f"({v['n_items']} items{note})"))
    return rows


def _only(r: EvalResult, ids: set[str]) -> EvalResult:
    return dataclasses.replace(r, records=[x for x in r.records if x["id"] in ids])


def compare_task_metrics(a: EvalResult, b: EvalResult, **kwargs: Any) -> list[Comparison]:
    """Paired comparisons of ``b`` against ``a`` on every task metric both carry (``kwargs`` as for
    :func:`evals.compare.compare`), each over the items where both runs have it."""
    out = []
    for name in [n for n in names_in(a.records) if n in set(names_in(b.records))]:
        have = {r["id"] for r in a.records if item_value(r, name) is not None} & \
               {r["id"] for r in b.records if item_value(r, name) is not None}
        if not have:
            continue
        info = METRICS.get(name, MetricInfo(name, percent=False))

        def score(record: dict[str, Any], name: str = name) -> float | None:
            return item_value(record, name)

        score.__name__ = name
        out.append(compare(_only(a, have), _only(b, have), item_score=score, metric=info.title,
                           lower_is_better=info.lower_is_better, **kwargs))
    return out
