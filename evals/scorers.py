"""Scorers the built-in tasks need beyond the ``rewards`` built-ins, written as rewards so that
training can use them too (``evals.scorers:LabelMatch`` in a config's ``rewards:`` list).

They bound their own work (linear scans, length caps), so a :class:`rewards.RewardSet` runs
them in-process like the ``rewards`` built-ins.

>>> from rewards import get_reward
>>> labels = ("Arbitration", "Choice of law", "Other")
>>> match = get_reward("evals.scorers:LabelMatch", labels=labels)
>>> match(["Choice of law", "**Arbitration**", "I think arbitration."], label=["Choice of law"] * 3)
[1.0, 0.0, 0.0]
>>> get_reward("evals.scorers:LabelValid", labels=labels)(["Other.", "Other users may sue"])
[1.0, 0.0]
>>> parse_label("The clause is about choice of law.", labels)
'Choice of law'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from rewards.core import BuiltinReward
from rewards.summary import SummaryShape  # noqa: F401  (re-exported: the reward lives in rewards, registered as summary_shape)

MAX_SCAN_CHARS = 4000  # labels are looked for in the first characters only

_STRIP = " \t\r\n.,;:!?\"'`*_#()[]{}<>"
_PREFIX = re.compile(r"^(?:the\s+)?(?:answer|label|category|class|classification)\s*(?:is)?\s*[:=-]?\s*", re.I)


def _clean(s: str) -> str:
    s = s.strip().strip(_STRIP)
    s = _PREFIX.sub("", s).strip(_STRIP)
    return re.sub(r"\s+", " ", s).lower()


def exact_label(text: str, labels: Sequence[str]) -> str | None:
    """The label the completion's first line *is* (case, surrounding punctuation/markdown and a
    leading "Label:" / "Answer:" ignored), else None."""
    first = text[:MAX_SCAN_CHARS].strip().split("\n", 1)[0] if text.strip() else ""
    got = _clean(first)
    for lab in labels:
        if got == lab.lower():
            return lab
    return None


def parse_label(text: str, labels: Sequence[str], fallback_label: str | None = "Other") -> str | None:
    """The predicted label: the exact label of the first line if it is one; otherwise the label
    named earliest in the text, looking only at the specific labels (a generic ``fallback_label``
    such as "Other" is too common a word to count unless it is the whole answer); else None."""
    exact = exact_label(text, labels)
    if exact is not None:
        return exact
    low = text[:MAX_SCAN_CHARS].lower()
    best: tuple[int, str] | None = None
    for lab in labels:
        if lab == fallback_label:
            continue
        m = re.search(r"(?<![a-z])" + re.escape(lab.lower()) + r"(?![a-z])", low)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), lab)
    return best[1] if best else None


@dataclass(frozen=True)
class LabelMatch(BuiltinReward):
    """1.0 when the predicted label (see :func:`parse_label`; only the exact first line with
    ``strict``) equals the row's ``label_column``, compared case-insensitively; else 0.0."""

    labels: tuple[str, ...] = ()
    label_column: str = "label"
    strict: bool = False
    fallback_label: str | None = "Other"

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError("LabelMatch needs the task's 'labels'")

    def required_columns(self) -> set[str]:
        return {self.label_column}

    def predict(self, text: str) -> str | None:
        return exact_label(text, self.labels) if self.strict else parse_label(text, self.labels, self.fallback_label)

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        gold = row.get(self.label_column)
        if gold is None:
            return None
        pred = self.predict(text)
        return 1.0 if pred is not None and pred.lower() == str(gold).strip().lower() else 0.0


@dataclass(frozen=True)
class LabelValid(BuiltinReward):
    """Format compliance for classification: 1.0 when the first line is exactly one of ``labels``."""

    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError("LabelValid needs the task's 'labels'")

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        return 1.0 if exact_label(text, self.labels) is not None else 0.0
