"""Writes audit_rows.jsonl beside this file: held-out passages with an honest summary each, for the reward audit.

    python examples/legal/make_audit_rows.py
    rltk reward audit --reward legal_summary --data examples/legal/audit_rows.jsonl --honest-column honest

The honest summaries below were written for rltk (by hand, for these held-out passages of data/all_v1.json):
plain English, shorter than the passage, in their own words, keeping the passage's precise legal terms with
their polarity. Manor & Li's own summaries are plain English *without* most of those terms (their mean
legal_terms score is 0.26), so they are no yardstick for a reward that asks for the terms. Every attack of the
audit (the passage pasted, its terms as a list, every glossary term, the honest summary with its negation
flipped or padded with the passage, empty, rambling, garbage) must score below the honest summary of its row.
"""

from __future__ import annotations

import json
from pathlib import Path

from rltk.core.rows import read_rows

HONEST = {
    "tosdr061": "JetBrains may change these terms at its sole discretion at any time, without notices to you; "
                "checking the terms for changes is your job.",
    "tosdr063": "JetBrains may revoke your revocable permission to view and download site content at any time, "
                "and you must stop once notified.",
    "tosdr133": "Disqus may make a modification to this privacy policy at its sole discretion; if you keep using "
                "the site after a change, you accept it.",
    "tosdr145": "Advertisers and their partners cannot get personal data that identifies you from the advertising "
                "cookies on this site.",
    "tosdr177": "Airbnb does not claim ownership of your member content unless you give specific consent, and "
                "your own rights to it stay intact.",
    "tosdr181": "Outside the United States, Airbnb may terminate the agreement for convenience with a notice period "
                "of 30 days, sent by email.",
    "tosdr186": "If a court finds one provision unenforceable, it is struck out and the rest of the terms stay "
                "enforceable.",
    "tosdr187": "If Airbnb does not enforce a right, that is not a waiver of it unless agreed in writing, and using "
                "one remedy keeps the other remedies open.",
    "tosdr232": "Groupon keeps using personal data after you leave when the law requires it, for dispute resolution, "
                "and to enforce its agreements.",
    "tosdr241": "Reddit may share personal data with vendors and consultants, but not with advertisers, and they are "
                "bound by confidentiality and security duties.",
    "tosdr273": "Disputes go to binding arbitration, and you accept a class action waiver.",
    "tosdr274": "CNN may make a modification to these terms at any time, effective on posting; using the site "
                "afterwards counts as acceptance.",
    "tosdr282": "You give a permanent waiver of your moral rights as an author in any user content you post.",
    "tosdr284": "CNN may remove or edit your user content at its sole discretion.",
    "tosdr312": "GitHub may order the suspension or termination of your access at any time, with or without cause "
                "or notice, and may refuse service to anyone.",
    "tosdr409": "By agreeing, you and Sprint accept a jury trial waiver and a class action waiver for disputes.",
}


def main() -> None:
    here = Path(__file__).parent
    rows = {r["uid"]: r for r in read_rows(here / "data" / "all_v1.json").rows}
    out = here / "audit_rows.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for uid, honest in HONEST.items():
            r = rows[uid]
            f.write(json.dumps({"uid": uid, "original_text": r["original_text"], "reference_summary": r["reference_summary"],
                                "honest": honest}) + "\n")
    print(f"wrote {len(HONEST)} rows to {out}")


if __name__ == "__main__":
    main()
