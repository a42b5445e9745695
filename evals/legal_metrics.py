"""The legal-summary metrics of every sample of a ``legal_summary`` eval (see :mod:`evals.task_metrics`).

Per sample, against the row's source passage (``original_text``) and human summary (``reference_summary``):

- ``legal_terms``: the ``legal_terms`` reward (precise terms kept, lay variants and contradictions cost);
- ``term_coverage`` / ``lay_rate`` / ``contradiction_rate``: of the terms the source requires, the shares
  the summary keeps, replaces by a lay phrase, and uses with the opposite polarity (None when the source
  holds no glossary term);
- ``rouge_l``: ROUGE-L F1 against the human summary (Google's ``rouge-score`` package, Porter stemmer);
- ``compression``: the summary's words over the source's (lower is shorter; above 1 is longer than the source);
- ``copy_rate``: share of the summary's words pasted from the source (runs of 8 words,
  :func:`rewards.summary.copy_rate`).

>>> row = {"original_text": "the company shall not be liable for any indirect damages arising from the use of the service",
...        "reference_summary": "the company is not liable for indirect damages."}
>>> m = legal_sample_metrics("The company is not liable for indirect damages.", row)
>>> m["term_coverage"], m["contradiction_rate"], round(m["rouge_l"], 2), m["copy_rate"]
(1.0, 0.0, 1.0, 0.0)
>>> legal_sample_metrics("The company is liable for indirect damages.", row)["contradiction_rate"]  # of 2 terms, "liable"
0.5
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rouge_score import rouge_scorer

from evals.task_metrics import METRICS, MetricInfo
from rewards.legal import LegalTerms
from rewards.summary import copy_rate

SOURCE, REFERENCE = "original_text", "reference_summary"

METRICS.update({
    "legal_terms": MetricInfo("legal_terms score"),
    "term_coverage": MetricInfo("precise-term coverage", note="of the terms the source uses"),
    "lay_rate": MetricInfo("lay-variant rate", lower_is_better=True, note="terms replaced by a lay phrase"),
    "contradiction_rate": MetricInfo("contradiction rate", lower_is_better=True, note="terms with the opposite polarity"),
    "rouge_l": MetricInfo("ROUGE-L F1", note="vs the human summary"),
    "compression": MetricInfo("compression", lower_is_better=True, percent=False, note="summary words / source words"),
    "copy_rate": MetricInfo("copy rate", lower_is_better=True, note="words in 8-word runs pasted from the source"),
})


@lru_cache(maxsize=1)
def _rouge() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def legal_sample_metrics(text: str, row: dict[str, Any]) -> dict[str, float | None]:
    """The legal metrics of one summary ``text`` of ``row`` (see the module docstring)."""
    source, reference = str(row.get(SOURCE) or ""), row.get(REFERENCE)
    a = LegalTerms(source_column=SOURCE).analyse(text, row)
    n = len(a.required)
    src_words = len(source.split())
    return {
        "legal_terms": a.score,
        "term_coverage": len(a.covered) / n if n else None,
        "lay_rate": len(a.lay) / n if n else None,
        "contradiction_rate": len(a.contradicted) / n if n else None,
        "rouge_l": _rouge().score(str(reference), text[:20_000])["rougeL"].fmeasure if reference else None,
        "compression": len(text.split()) / src_words if src_words else None,
        "copy_rate": copy_rate(text, source),
    }
