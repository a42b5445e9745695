"""The legal tasks: ``unfair_tos`` (LegalBench clause classification) and ``legal_summary``
(plain-English summaries scored by ``legal_terms`` and :class:`rewards.summary.SummaryShape`)."""

from __future__ import annotations

from typing import Any

from evals.legal_metrics import legal_sample_metrics
from evals.scorers import parse_label
from evals.tasks.base import TASKS, Task, rows_id
from rewards import RewardSpec, get_reward
from rltk.core.errors import UserError
from rltk.core.rows import Rows, read_rows
from rltk.core.splits import SPLITS, split_by_group

UNFAIR_TOS_LABELS: dict[str, str] = {
    "Arbitration": "disputes must go to arbitration instead of a court",
    "Unilateral change": "the provider may change the terms or the service on its own",
    "Content removal": "the provider may remove the user's content",
    "Jurisdiction": "disputes must be brought before the courts of a given place",
    "Choice of law": "a given country's or state's law governs the contract",
    "Limitation of liability": "the provider limits or excludes its liability",
    "Unilateral termination": "the provider may suspend or terminate the account or service on its own",
    "Contract by using": "the user is bound by the terms merely by using the service",
    "Other": "none of the above",
}

UNFAIR_TOS_SYSTEM = (
    "Classify the terms-of-service clause into exactly one category. Categories:\n"
    + "\n".join(f"- {k}: {v}" for k, v in UNFAIR_TOS_LABELS.items())
    + "\nAnswer with the category name only."
)


@TASKS.register("unfair_tos")
def unfair_tos_task(strict: bool = False, per_class: int = 0) -> Task:
    """LegalBench ``unfair_tos`` (CLAUDETTE clauses, 9 labels): ``--data .../legalbench_unfair_tos/test.tsv``.
    Exact-label scoring (``strict``: only an answer that is exactly a label counts), per-class
    accuracy and macro-F1. About 90% of rows are ``Other``: use ``--shuffle`` with ``--limit``, or
    ``per_class`` (e.g. 12): at most that many rows of each label, the first in file order (a balanced set)."""
    labels = tuple(UNFAIR_TOS_LABELS)

    def load(data: str | None) -> Rows:
        if data is None:
            raise UserError("task unfair_tos needs --data PATH (LegalBench unfair_tos test.tsv; no hub copy is loaded)")
        rows = read_rows(data)
        if per_class:
            seen: dict[str, int] = {}
            keep = []
            for i, r in enumerate(rows.rows):
                label = str(r.get("label", "")).strip()
                seen[label] = seen.get(label, 0) + 1
                if seen[label] <= per_class:
                    keep.append(i)
            rows = rows.select(keep)
        return rows

    return Task(
        name="unfair_tos",
        description="ToS clause -> 1 of 9 unfair-clause categories (LegalBench)",
        load=load,
        fields=("text", "label"),
        system=UNFAIR_TOS_SYSTEM,
        user=lambda r: f"Clause: {str(r['text']).strip()}",
        rewards=(
            RewardSpec("evals.scorers:LabelMatch", params={"labels": list(labels), "strict": strict}, label="correct"),
            RewardSpec("evals.scorers:LabelValid", params={"labels": list(labels)}, label="format"),
        ),
        correct="correct",
        format="format",
        extract=lambda text: parse_label(text, labels),
        gold=lambda r: str(r["label"]).strip(),
        item_id=rows_id(None, "unfair_tos"),
        labels=labels,
        demo=lambda r: str(r["label"]).strip(),
        demo_source=None,
        max_new_tokens=16,
        options={"strict": strict, "per_class": per_class},
    )


LEGAL_SUMMARY_SYSTEM = (
    "Summarize the passage from a contract or terms of service in plain English, in one or two sentences. "
    "Keep the precise legal terms the passage uses (for example 'indemnify', 'arbitration', 'liable')."
)


LEGAL_DOCUMENT = ("urls", "doc")  # Manor & Li: a ToS;DR service's document (urls + name), a TL;DRLegal document (name)


@TASKS.register("legal_summary")
def legal_summary_task(max_words: int = 60, max_ratio: float = 0.6, all_rows: bool = False, split: str = "all",
                       split_by: str = ",".join(LEGAL_DOCUMENT), test_fraction: float = 0.2, max_source_words: int = 0) -> Task:
    """Plain-English summaries of contract / ToS passages (Manor & Li 2019,
    ``--data .../plain_english_contracts/all_v1.json``), scored by ``legal_terms`` (precise terms of
    the source kept, lay variants penalised) and :class:`rewards.summary.SummaryShape` (at most
    ``max_words`` words and ``max_ratio`` of the passage, plain prose). A graded task: the item
    score is the product of the two, in [0, 1], so neither copying the passage (all terms, no
    summary) nor a short non-answer (summary-shaped, no terms) scores. Passages holding no
    glossary term are left out (337 of the 446 remain) unless ``all_rows``. The product also has
    :class:`rewards.summary.NoCopy` (1 - the share of the summary copied from the passage in runs of words). ``split``: ``all``, or
    the ``train`` / ``test`` side of a split by document (``split_by`` columns, ``test_fraction`` of
    the documents held out whole; :func:`rltk.core.splits.split_by_group`), the split a training
    config's ``data.split_by`` makes; ``max_source_words`` (0: none) leaves out longer passages. Every sample also gets the legal metrics
    (:mod:`evals.legal_metrics`: term coverage, lay variants, contradictions, ROUGE-L, compression, copying)."""
    if split != "all" and split not in SPLITS:
        raise UserError(f"legal_summary: split must be all, train or test, got {split!r}")

    def load(data: str | None) -> Rows:
        if data is None:
            raise UserError("task legal_summary needs --data PATH (plain_english_contracts all_v1.json)")
        rows = read_rows(data)
        if split != "all":
            rows = split_by_group(rows, [c.strip() for c in split_by.split(",") if c.strip()], split, test_fraction)
        if max_source_words:  # long passages left out (the same rule as a training config's data.max_words)
            rows = rows.select([i for i, r in enumerate(rows.rows) if len(str(r.get("original_text") or "").split()) <= max_source_words])
        if not all_rows:  # keep the passages that hold a glossary term: legal_terms has nothing to judge in the others
            terms = get_reward("legal_terms", **_legal_terms_params())
            keep = [i for i, r in enumerate(rows.rows) if "original_text" not in r or terms.required_terms(r)]
            rows = rows.select(keep)
        return rows

    return Task(
        name="legal_summary",
        description="contract passage -> plain-English summary, legal_terms + length/structure",
        load=load,
        fields=("original_text", "reference_summary"),
        system=LEGAL_SUMMARY_SYSTEM,
        user=lambda r: f"Passage:\n{str(r['original_text']).strip()}",
        rewards=(
            RewardSpec("legal_terms", params=_legal_terms_params(), label="legal_terms"),
            RewardSpec("summary_shape", params={"max_words": max_words, "max_ratio": max_ratio}, label="shape"),
            # a pasted passage keeps every term and is no summary: its shape alone still gave it 0.66
            RewardSpec("no_copy", params={"source_column": "original_text"}, label="no_copy"),
        ),
        combine="product",
        correct=None,
        format="shape",
        extract=lambda text: None,
        gold=lambda r: str(r["reference_summary"]),
        item_id=rows_id("uid", "legal"),
        demo=lambda r: str(r["reference_summary"]),
        demo_source=None,
        max_new_tokens=128,
        options={"max_words": max_words, "max_ratio": max_ratio, "all_rows": all_rows, "split": split,
                 "split_by": split_by, "test_fraction": test_fraction, "max_source_words": max_source_words},
        sample_metrics=legal_sample_metrics,
    )


def _legal_terms_params() -> dict[str, Any]:
    return {"source_column": "original_text"}
