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


_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)]|#{1,6})\s")
_SENTENCE = re.compile(r"[.!?](?:\s|$)")


@dataclass(frozen=True)
class SummaryShape(BuiltinReward):
    """Length and structure of a plain-English summary, in [0, 1]: the mean of

    * length: 1.0 for ``min_words`` to ``max_words`` words and at most ``max_ratio`` times the
      source's words (a summary is shorter than what it summarises); falling linearly to 0 at
      twice the limit (or at 0 words below ``min_words``);
    * structure: plain prose — no markdown lists or headings, no preamble such as
      "Here is a summary:", and at most ``max_sentences`` sentences ending in . ! or ?.

    >>> s = SummaryShape()
    >>> s.score_one("You can cancel at any time, but fees paid are not refunded.", {"original_text": "x " * 80})
    1.0
    >>> s.score_one("Here is a summary:\\n- you pay\\n- they keep it", {"original_text": "x " * 80})
    0.5
    """

    min_words: int = 5
    max_words: int = 60
    max_ratio: float = 0.6
    max_sentences: int = 3
    source_column: str | None = "original_text"

    def __post_init__(self) -> None:
        if not 0 < self.min_words <= self.max_words or self.max_ratio <= 0 or self.max_sentences < 1:
            raise ValueError("SummaryShape needs 0 < min_words <= max_words, max_ratio > 0, max_sentences >= 1")

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        text = text[: MAX_SCAN_CHARS * 4]
        words = len(text.split())
        limit = self.max_words
        src = row.get(self.source_column) if self.source_column else None
        if src:
            limit = max(self.min_words, min(limit, int(self.max_ratio * len(str(src).split()))))
        if words < self.min_words:
            length = words / self.min_words
        elif words <= limit:
            length = 1.0
        else:
            length = max(0.0, 1.0 - (words - limit) / limit)
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        listy = any(_LIST_LINE.match(ln) for ln in lines)
        preamble = bool(lines) and bool(re.match(r"(?i)^\s*(?:here(?:'s| is)|summary\s*:|sure\b|certainly\b)", lines[0]))
        sentences = len(_SENTENCE.findall(text.strip() + (" " if text.strip() else "")))
        prose = bool(lines) and not listy and not preamble and 1 <= sentences <= self.max_sentences
        ends = text.strip().endswith((".", "!", "?"))
        plain = bool(lines) and not listy and not preamble
        structure = 1.0 if prose and ends else (0.5 if plain else 0.0)
        return round((length + structure) / 2, 12)
