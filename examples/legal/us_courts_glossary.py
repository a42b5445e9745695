"""Builds a `legal_terms` glossary from the US Courts "Glossary of Legal Terms" (CC BY 4.0, in ../shared/data/legal).

    python examples/legal/us_courts_glossary.py ../shared/data/legal/us_courts_glossary/us-courts-glossary.json \\
        --out us_courts_terms.json
    rltk reward score --reward legal_terms --param legal_terms.glossary=us_courts_terms.json \
        --param legal_terms.source_column=original_text --input rows.jsonl --output scored.jsonl

or in a config: `{name: legal_terms, params: {glossary: us_courts_terms.json, source_column: original_text}}`.

Each entry's phrase becomes a term; a parenthesised abbreviation ("Administrative Office of the United States
Courts (AO)") and a plural become its other precise forms. The US Courts glossary defines terms but names no lay
variants, so `lay` stays empty unless the shipped rltk glossary (rewards/data/legal_glossary.json) has the same
term: its lay phrases are kept. The result is in the glossary format `legal_terms` reads
(`{"terms": [{"term", "forms", "lay", "category"}]}`), with the source's attribution.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rewards.legal import load_glossary

_ABBREV = re.compile(r"^(?P<term>.+?)\s*\((?P<abbr>[^)]+)\)\s*$")


def convert(entries: list[dict], known: dict[str, tuple[str, ...]]) -> list[dict]:
    """Glossary terms from US Courts entries (``{"phrase", "definition"}``), one per distinct phrase."""
    out: dict[str, dict] = {}
    for e in entries:
        phrase = " ".join(str(e.get("phrase", "")).split())
        if not phrase:
            continue
        m = _ABBREV.match(phrase)
        term, forms = (m["term"], [m["abbr"]]) if m else (phrase, [])
        key = term.lower()
        if key in out:
            continue
        if " " not in key and not key.endswith("s"):  # a one-word term's plural
            forms.append(term[:-1] + "ies" if key.endswith("y") and key[-2:-1] not in "aeiou" else
                         term + "es" if key.endswith(("x", "ch", "sh")) else term + "s")
        out[key] = {"term": term.lower(), "forms": [f.lower() for f in forms], "lay": list(known.get(key, ())),
                    "category": "us courts"}
    return list(out.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="us-courts-glossary.json (Public.Law edition)")
    ap.add_argument("--out", required=True, help="glossary JSON to write")
    args = ap.parse_args()
    data = json.loads(Path(args.source).read_text(encoding="utf-8"))
    doc = data[0] if isinstance(data, list) else data
    known = {e.term.lower(): e.lay for e in load_glossary().entries}
    terms = convert(doc["entries"], known)
    meta = doc.get("metadata", {})
    glossary = {"name": "US Courts Glossary of Legal Terms (as a legal_terms glossary)",
                "license": "CC BY 4.0: 'Glossary of Legal Terms', United States Courts, compiled by Public.Law",
                "source": meta.get("dcterms:source", "https://www.uscourts.gov/glossary"), "terms": terms}
    Path(args.out).write_text(json.dumps(glossary, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(terms)} terms to {args.out}")


if __name__ == "__main__":
    main()
