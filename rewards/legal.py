"""``legal_terms``: does a legal summary keep the precise contract-law terms its source needs?

Driven by a glossary (``rewards/data/legal_glossary.json``, written for rltk: 180+ contract-law
terms, each with its other precise forms and the imprecise lay phrases a summary might use
instead; replaceable with ``glossary=path/to/yours.json`` in the same format). For each row the
required terms come from a column (``terms_column``: a list, or a ``;``-separated string), or are
the glossary terms present in the source document (``source_column``). Then, per required term:

- **covered**: the summary uses the term (or one of its precise forms);
- **lay**: the summary does not, but uses one of the term's lay phrases instead ("responsible"
  for "liable", "pay you back" for "indemnify");
- **contradicted**: the summary uses the term with the opposite polarity to the source ("is
  liable" where the source says "shall not be liable"), judged by negation words ("not", "no",
  "never", "without", "disclaimer of", ...) just before each mention, with only auxiliaries and
  determiners between ("shall not be held liable", "no express or implied warranty") — as far as
  simple rules can tell.

``score = clamp((covered - lay_penalty * lay - contradiction_penalty * contradicted) / required, 0, 1)``;
None when a row requires no term.

>>> lt = get_reward("legal_terms")
>>> src = "The supplier shall not be liable for consequential damages. The customer shall indemnify the supplier."
>>> lt(["The supplier is not liable for consequential damages; the customer must indemnify it.",
...     "The supplier is not responsible for knock-on losses; the customer must pay it back.",
...     "The customer must indemnify the supplier.",
...     "The supplier is liable for consequential damages; the customer must indemnify it."], source=[src] * 4)
[1.0, 0.0, 0.3333333333333333, 0.3333333333333333]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from rewards.core import REWARDS, BuiltinReward, get_reward  # noqa: F401 (doctest)
from rltk.core.errors import UserError

NEGATIONS = {"not", "no", "never", "without", "nor", "neither", "cannot", "none", "nothing", "disclaimer",
             "disclaims", "disclaim", "disclaimed", "excludes", "exclude", "excluding"}
# words that may stand between a negation and the term it negates ("shall not be held liable",
# "no express or implied warranty"); any other word (a verb: "does not claim any ownership")
# means the negation is about something else
BRIDGE = {"be", "been", "being", "is", "are", "was", "were", "any", "a", "an", "the", "held", "deemed", "have",
          "has", "had", "legally", "shall", "will", "may", "can", "must", "to", "of", "for", "or", "and", "express",
          "expressly", "implied", "whatsoever", "kind", "other", "further", "such", "in", "its", "our", "their",
          "your", "us", "we", "it", "them", "you", "make", "makes", "made", "give", "gives", "provide", "provides",
          "all", "obligation", "obligated", "required", "entitled", "right", "responsibility",
          # "without prior written notice", "shall not constitute / be construed as a waiver"
          "prior", "advance", "written", "constitute", "constitutes", "construed", "as", "considered", "operate", "operates"}
NEGATED_CLAUSE = re.compile(r"\b(?:in no event|under no circumstances|in no case)\b")
NEGATION_WINDOW = 6  # words before a mention that may negate it
MAX_TEXT_CHARS = 200_000  # longer texts are cut (a scan is linear, but a reward must stay cheap)


@dataclass(frozen=True)
class GlossaryEntry:
    term: str
    forms: tuple[str, ...] = ()
    lay: tuple[str, ...] = ()
    category: str = ""
    precise_re: re.Pattern = field(default=None, compare=False, repr=False)  # type: ignore[assignment]
    lay_re: re.Pattern | None = field(default=None, compare=False, repr=False)


def _phrase_pattern(phrases: list[str]) -> re.Pattern:
    alts = sorted({_norm(p) for p in phrases if _norm(p)}, key=len, reverse=True)
    body = "|".join(r"[\s]+".join(re.escape(w) for w in a.split()) for a in alts)
    return re.compile(rf"(?<![\w])(?:{body})(?![\w])")


def make_entry(term: str, forms: list[str] = (), lay: list[str] = (), category: str = "") -> GlossaryEntry:  # type: ignore[assignment]
    precise = [term, *forms]
    return GlossaryEntry(term, tuple(forms), tuple(lay), category, _phrase_pattern(precise),
                         _phrase_pattern(list(lay)) if lay else None)


def _norm(text: str) -> str:
    """Lower case, curly quotes straightened, "n't" / "n t" (punctuation-stripped data) -> " not",
    hyphens and punctuation other than sentence ends -> spaces."""
    t = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    t = re.sub(r"\bcan[' ]?t\b", "can not", t)
    t = re.sub(r"\bwon[' ]?t\b", "will not", t)
    t = re.sub(r"\b(\w+)n(?:'|\s)t\b", r"\1 not", t)
    t = re.sub(r"[^\w\s.;:!?]", " ", t)
    return re.sub(r"[ \t\r\f\v]+", " ", t).strip()


@dataclass(frozen=True)
class Glossary:
    entries: tuple[GlossaryEntry, ...]
    source: str

    def find(self, name: str) -> GlossaryEntry:
        """The entry whose term or precise form is ``name``; an ad-hoc entry for an unknown term."""
        key = _norm(name)
        for e in self.entries:
            if key == _norm(e.term) or key in {_norm(f) for f in e.forms}:
                return e
        return make_entry(name)

    def present_in(self, text: str) -> list[GlossaryEntry]:
        return [e for e in self.entries if e.precise_re.search(text)]


DEFAULT_GLOSSARY = "legal_glossary.json"


@lru_cache(maxsize=8)
def load_glossary(path: str | None = None) -> Glossary:
    """The shipped glossary (``path`` None) or a user's JSON file in the same format:
    ``{"terms": [{"term": str, "forms": [str], "lay": [str], "category": str}, ...]}``."""
    if path is None:
        where = f"rewards/data/{DEFAULT_GLOSSARY}"
        text = resources.files("rewards").joinpath("data", DEFAULT_GLOSSARY).read_text(encoding="utf-8")
    else:
        where = path
        p = Path(path).expanduser()
        if not p.is_file():
            raise UserError(f"legal_terms glossary not found: {path}")
        text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}:{e.lineno}: invalid JSON in glossary: {e.msg}") from None
    terms = data.get("terms") if isinstance(data, dict) else None
    if not isinstance(terms, list) or not terms:
        raise UserError(f"{where}: glossary must be an object with a non-empty 'terms' list")
    entries = []
    for i, t in enumerate(terms):
        if not isinstance(t, dict) or not isinstance(t.get("term"), str) or not t["term"].strip():
            raise UserError(f"{where}: terms[{i}] must be an object with a non-empty 'term' string")
        for key in ("forms", "lay"):
            v = t.get(key, [])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise UserError(f"{where}: terms[{i}] ('{t['term']}'): '{key}' must be a list of strings")
        unknown = set(t) - {"term", "forms", "lay", "category", "note"}
        if unknown:
            raise UserError(f"{where}: terms[{i}] ('{t['term']}'): unknown key '{sorted(unknown)[0]}'")
        entries.append(make_entry(t["term"], t.get("forms", []), t.get("lay", []), t.get("category", "")))
    return Glossary(tuple(entries), where)


# --- analysis ---------------------------------------------------------------------------------

def polarities(entry: GlossaryEntry, text: str) -> set[bool]:
    """Polarity of each mention of ``entry`` in normalised ``text``: False when a negation word
    occurs in the same clause within NEGATION_WINDOW words before it."""
    out = set()
    for m in entry.precise_re.finditer(text):
        before = re.split(r"[.;:!?\n]", text[max(0, m.start() - 200):m.start()])[-1].split()[-NEGATION_WINDOW:]
        clause = re.split(r"[.;:!?\n]", text[max(0, m.start() - 300):m.start()])[-1]
        negated = bool(NEGATED_CLAUSE.search(clause)) or m.group(0).startswith("non")
        for w in ([] if negated else reversed(before)):  # walk back from the term over bridge words to a negation
            if w in NEGATIONS:
                negated = True
                break
            if w not in BRIDGE:
                break
        out.add(not negated)
    return out


@dataclass
class LegalAnalysis:
    required: list[str]
    covered: list[str]
    lay: dict[str, str]  # term -> the lay phrase used instead
    contradicted: list[str]
    score: float | None


def analyse(summary: str, required: list[GlossaryEntry], source: str | None,
            lay_penalty: float = 0.5, contradiction_penalty: float = 1.0) -> LegalAnalysis:
    summ = _norm(summary[:MAX_TEXT_CHARS])
    src = _norm(source[:MAX_TEXT_CHARS]) if source else None
    covered, lay, contradicted = [], {}, []
    for e in required:
        if e.precise_re.search(summ):
            if src is not None:
                s_pol, c_pol = polarities(e, src), polarities(e, summ)
                if len(s_pol) == 1 and len(c_pol) == 1 and s_pol != c_pol:
                    contradicted.append(e.term)
                    continue
            covered.append(e.term)
        elif e.lay_re is not None:
            m = e.lay_re.search(summ)
            if m:
                lay[e.term] = m.group(0)
    n = len(required)
    if n == 0:
        return LegalAnalysis([], [], {}, [], None)
    raw = (len(covered) - lay_penalty * len(lay) - contradiction_penalty * len(contradicted)) / n
    return LegalAnalysis([e.term for e in required], covered, lay, contradicted, min(1.0, max(0.0, raw)))


@REWARDS.register("legal_terms")
@dataclass(frozen=True)
class LegalTerms(BuiltinReward):
    """Coverage of required contract-law terms, minus lay substitutes and contradictions, in [0, 1]."""

    source_column: str = "source"  # the document summarised (required terms = glossary terms in it)
    terms_column: str | None = None  # if set: the row's required terms (list or "a; b" string)
    glossary: str | None = None  # path to a user glossary JSON (default: the shipped one)
    lay_penalty: float = 0.5
    contradiction_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.lay_penalty < 0 or self.contradiction_penalty < 0:
            raise ValueError("penalties must be >= 0")
        load_glossary(self.glossary)  # a bad path or file fails now, not mid-training

    def required_columns(self) -> set[str]:
        return {self.terms_column} if self.terms_column else {self.source_column}

    def required_terms(self, row: dict[str, Any]) -> list[GlossaryEntry]:
        g = load_glossary(self.glossary)
        if self.terms_column:
            raw = row.get(self.terms_column)
            names = raw.split(";") if isinstance(raw, str) else list(raw or [])
            return [g.find(str(t)) for t in names if str(t).strip()]
        return g.present_in(_norm(str(row.get(self.source_column) or "")[:MAX_TEXT_CHARS]))

    def analyse(self, text: str, row: dict[str, Any]) -> LegalAnalysis:
        source = row.get(self.source_column)
        return analyse(text, self.required_terms(row), str(source) if source else None,
                       self.lay_penalty, self.contradiction_penalty)

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        return self.analyse(text, row).score
