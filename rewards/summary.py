"""Summaries: their shape (``summary_shape``), how much of them is pasted from the source
(:func:`copy_rate`, ``no_copy``), and the composed legal-summary reward (``legal_summary``).

>>> src = ("the supplier shall not be liable for any consequential damages arising from the use of the "
...        "service and the customer shall indemnify the supplier against all claims")
>>> copy_rate(src, src), copy_rate("The customer must indemnify the supplier.", src)
(1.0, 0.0)
>>> ls = get_reward("legal_summary")
>>> honest = "The supplier is not liable for consequential damages, and the customer must indemnify it."
>>> [round(x, 2) for x in ls([honest, src, "liable, consequential damages, indemnify, claims.", ""], original_text=[src] * 4)]
[1.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rewards.core import REWARDS, BuiltinReward, completion_text, get_reward, report_detail, row_view  # noqa: F401 (doctest)
from rewards.legal import LegalTerms, _norm, load_glossary
from rewards.polarity import polarity_flips

MAX_SCAN_CHARS = 4000  # a summary is judged on its first characters (a reward must stay cheap on any input)
MAX_SOURCE_CHARS = 200_000
_WORD = re.compile(r"\w+")
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)]|#{1,6})\s")
_SENTENCE = re.compile(r"[.!?](?:\s|$)")


def copy_rate(summary: str, source: str, run: int = 8) -> float:
    """Share of the summary's words that lie in a run of at least ``run`` consecutive words found, in the
    same order, in the source (case and punctuation ignored): 1.0 for a pasted passage, 0.0 for one written
    in its own words (quoting a short legal phrase such as "shall not be liable" is not copying)."""
    words = _WORD.findall(summary[:MAX_SCAN_CHARS * 4].lower())
    src = _WORD.findall(source[:MAX_SOURCE_CHARS].lower())
    if not words or len(words) < run or len(src) < run:
        return 0.0
    grams = {tuple(src[i:i + run]) for i in range(len(src) - run + 1)}
    covered = [False] * len(words)
    for i in range(len(words) - run + 1):
        if tuple(words[i:i + run]) in grams:
            covered[i:i + run] = [True] * run
    return sum(covered) / len(words)


@REWARDS.register("summary_shape")
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


@REWARDS.register("no_copy")
@dataclass(frozen=True)
class NoCopy(BuiltinReward):
    """``1 - copy_rate(summary, source)``: a summary in its own words scores 1, a pasted passage 0."""

    source_column: str = "original_text"
    run: int = 8

    def required_columns(self) -> set[str]:
        return {self.source_column}

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        return 1.0 - copy_rate(text, str(row.get(self.source_column) or ""), self.run)


def term_density(text: str, glossary: str | None = None) -> float:
    """Share of the words of ``text`` that belong to a mention of a glossary term (any term, any precise
    form): a sentence that uses two terms is well under 0.5; a list of terms is 1.0."""
    norm = _norm(text[:MAX_SCAN_CHARS * 4])
    words = [m.span() for m in _WORD.finditer(norm)]
    if not words:
        return 0.0
    marked = [False] * (len(norm) + 1)
    for e in load_glossary(glossary).entries:
        for m in e.precise_re.finditer(norm):
            marked[m.start():m.end()] = [True] * (m.end() - m.start())
    return sum(1 for a, _ in words if marked[a]) / len(words)


@REWARDS.register("legal_summary")
@dataclass(frozen=True)
class LegalSummary(BuiltinReward):
    """The composed reward of a legal summary, in [0, 1]: the product of

    * ``legal_terms`` (the source's precise terms kept; lay variants and contradictions cost; 1.0 when
      the source holds no glossary term, so the other parts decide),
    * ``summary_shape`` (length within ``max_words`` and ``max_ratio`` of the source, whole sentences),
    * ``1 - copy_rate`` (not pasted from the source: runs of ``copy_run`` words), and
    * a term-stuffing factor: 1.0 while at most ``max_term_density`` of the words are glossary terms
      (99% of Manor & Li's human summaries use at most 0.38), falling linearly to 0 at twice that;
    * a polarity factor ``1 / (1 + flips)`` over the predicates whose negation the summary reverses against
      the source (:func:`rewards.polarity.polarity_flips`: "may not change" for "reserves the right to change").

    A product, so no part can be traded for another: pasting the source keeps every term but scores 0,
    as do a list of terms, an empty reply and a summary whose only term is negated against its source; a
    flipped negation elsewhere halves the score (or less).
    Each sample's parts are reported (``rltk reward score`` output, training's samples.jsonl).
    """

    source_column: str = "original_text"
    terms_column: str | None = None
    glossary: str | None = None
    lay_penalty: float = 0.5
    contradiction_penalty: float = 1.0
    min_words: int = 5
    max_words: int = 60
    max_ratio: float = 0.6
    max_sentences: int = 3
    copy_run: int = 8
    max_term_density: float = 0.4

    def __post_init__(self) -> None:
        if not 0 < self.max_term_density <= 0.5 or self.copy_run < 2:
            raise ValueError("legal_summary needs 0 < max_term_density <= 0.5 and copy_run >= 2")
        self.parts()  # bad glossary or shape settings fail now

    def parts(self) -> tuple[LegalTerms, SummaryShape]:
        return (LegalTerms(source_column=self.source_column, terms_column=self.terms_column, glossary=self.glossary,
                           lay_penalty=self.lay_penalty, contradiction_penalty=self.contradiction_penalty),
                SummaryShape(min_words=self.min_words, max_words=self.max_words, max_ratio=self.max_ratio,
                             max_sentences=self.max_sentences, source_column=self.source_column))

    def required_columns(self) -> set[str]:
        return {self.source_column} | ({self.terms_column} if self.terms_column else set())

    def stuffing(self, density: float) -> float:
        return min(1.0, max(0.0, (2 * self.max_term_density - density) / self.max_term_density))

    def detail(self, text: str, row: dict[str, Any]) -> dict[str, Any]:
        """The parts of one summary's score (what ``report_detail`` records)."""
        terms, shape = self.parts()
        a = terms.analyse(text, row)
        density = term_density(text, self.glossary)
        source = str(row.get(self.source_column) or "")
        flips = polarity_flips(text[:MAX_SCAN_CHARS * 4], source)
        d = {"terms": a.score, "covered": a.covered, "lay": a.lay, "contradicted": a.contradicted,
             "shape": shape.score_one(text, row), "copy_rate": copy_rate(text, source, self.copy_run),
             "term_density": round(density, 4), "polarity_flips": flips}
        d["score"] = ((1.0 if a.score is None else a.score) * d["shape"] * (1.0 - d["copy_rate"]) * self.stuffing(density)
                      / (1 + len(flips)))
        return d

    def __call__(self, completions: list, **columns: Any) -> list[float | None]:
        n, out = len(completions), []
        for i, c in enumerate(completions):
            d = self.detail(completion_text(c), row_view(columns, i, n))
            report_detail(i, d)
            out.append(d["score"])
        return out
