"""Does a summary keep the polarity of what its source says? :func:`polarity_flips` finds the predicates whose
negation the summary reverses ("may change" where the source says nothing of "not"; "does claim ownership" where
it says "does not claim any ownership").

``legal_terms`` judges polarity only at a glossary term ("is liable" against "shall not be liable"). A flip on
the verb ("JetBrains may *not* change these terms" for "reserves the right to change these terms") keeps every
term and escaped it (the legal reward audit's "negation flipped" attack scored at least the honest summary on
10 of 16 rows). Here each predicate of the summary — the word after an auxiliary or modal ("may", "does",
"shall", "is", "to"), with "not" between or not, and the content word after it ("make *a modification*") — is
looked up in the source by its first five letters; where every source mention has one polarity (negated: a
negation cue within six words before it, in its clause) and the summary's is the other, it is a flip. Words the source does
not use (paraphrase) are not judged. Rules, not understanding: on Manor & Li's 446 human summaries 7% (31) have
a flip found (mostly "don't ..." imperatives against a source's "you may not ..."); of the 12 audit rows whose
honest summary has a negation to flip, 10 flips are found (missed: "can get" for a source's "neither ... can gain",
"but with advertisers" for "but not with advertisers": no auxiliary before the flipped word).

>>> src = "jetbrains reserves the right to change any part of these terms. airbnb does not claim any ownership."
>>> polarity_flips("JetBrains may change the terms; Airbnb does not claim ownership.", src)
[]
>>> polarity_flips("JetBrains may not change the terms.", src)
['chang', 'terms']
>>> polarity_flips("Airbnb does claim ownership.", src)
['claim', 'owner']
"""

from __future__ import annotations

import re

from rewards.legal import NEGATIONS, _norm

MAX_CHARS = 20_000  # a summary or source is judged on its first characters (a reward must stay cheap)
CUES = NEGATIONS | {"not", "failure", "fail", "fails", "neither"}  # "failure to enforce"
_AUX = r"(?:may|might|shall|will|would|must|can|could|should|does|do|did|is|are|was|were|be|to)"
_PREDICATE = re.compile(rf"\b{_AUX}\s+(?:(not|never)\s+)?(?:be\s+)?([a-z]{{4,}})")
_LIGHT = frozenset("the a an and or of to in on for with by at from as your our their its any all such this that these "
                   "those you them us".split())
STEM = 5  # letters that identify a word across inflections (modify / modification, terminate / termination)
WINDOW = 6  # a negation cue this many words before a source mention, in its clause, negates it


def predicate_polarities(summary: str) -> dict[str, set[bool]]:
    """Stem -> polarities (True = affirmed) of each predicate of ``summary`` and the content word after it
    (within three words, in the same clause)."""
    text = _norm(summary[:MAX_CHARS])
    out: dict[str, set[bool]] = {}
    for m in _PREDICATE.finditer(text):
        affirmed = m.group(1) is None
        out.setdefault(m.group(2)[:STEM], set()).add(affirmed)
        after = re.split(r"[,.;:!?]", text[m.end():m.end() + 200])[0].split()[:3]
        for w in [w for w in after if len(w) >= 4 and w not in _LIGHT][:1]:
            out.setdefault(w[:STEM], set()).add(affirmed)
    return out


def source_polarities(source: str) -> dict[str, set[bool]]:
    """Stem -> polarities of every mention of a word of four letters or more in ``source``."""
    out: dict[str, set[bool]] = {}
    for clause in re.split(r"[,.;:!?]", _norm(source[:MAX_CHARS])):
        words = clause.split()
        for i, w in enumerate(words):
            if len(w) >= 4:
                out.setdefault(w[:STEM], set()).add(not any(x in CUES for x in words[max(0, i - WINDOW):i]))
    return out


def polarity_flips(summary: str, source: str) -> list[str]:
    """The stems whose single polarity in ``summary`` is the opposite of their single polarity in ``source``."""
    src = source_polarities(source)
    return [stem for stem, pol in predicate_polarities(summary).items()
            if len(pol) == 1 and len(src.get(stem, ())) == 1 and pol != src[stem]]


__all__ = ["polarity_flips", "predicate_polarities", "source_polarities"]
