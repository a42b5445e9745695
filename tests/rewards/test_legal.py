"""legal_terms: coverage, lay substitutes, contradictions, glossary replacement, real summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards import RewardSet, RewardSpec, get_reward
from rewards.legal import LegalTerms, load_glossary
from rltk.core.errors import UserError

from conftest import SHARED_DATA

SOURCE = ("The Provider shall not be liable for any consequential damages. The Customer shall indemnify and "
          "hold harmless the Provider. Either party may terminate this Agreement upon thirty days written notice. "
          "This Agreement is governed by the laws of the State of New York.")

CASES = [
    # (summary, expected score, what it shows) — 6 required terms: liability, consequential damages,
    # indemnify, hold harmless, termination, notice period, governing law = 7
    ("The Provider is not liable for consequential damages. The Customer must indemnify and hold harmless the "
     "Provider. Either side can terminate with thirty days written notice. New York governing law applies.", 1.0, "all precise"),
    ("The Provider is not responsible for knock-on losses. The Customer must pay it back and not blame it. Either "
     "side can end it with a heads up. Local rules apply.", 0.0, "all lay"),
    ("The Provider is not liable for consequential damages. The Customer must indemnify it.", 3 / 7, "partial"),
    ("The Provider is not liable for consequential damages. The Customer must pay it back.", (2 - 0.5) / 7, "one lay"),
    ("The Provider is liable for consequential damages. The Customer must indemnify it.", (2 - 1) / 7, "contradiction"),
]


@pytest.mark.parametrize("summary,expected,why", CASES, ids=[c[2] for c in CASES])
def test_scores_against_source(summary, expected, why):
    assert get_reward("legal_terms")([summary], source=[SOURCE]) == [pytest.approx(expected, abs=1e-12)]


def test_analysis_names_terms():
    a = LegalTerms().analyse("The Provider is liable. The Customer must pay it back and not blame it.", {"source": SOURCE})
    assert set(a.required) == {"liability", "consequential damages", "indemnify", "hold harmless", "termination",
                               "notice period", "governing law"}
    assert a.contradicted == ["liability"]
    assert a.lay == {"indemnify": "pay it back", "hold harmless": "not blame"}


def test_terms_column_and_not_applicable():
    lt = get_reward("legal_terms", terms_column="terms")
    out = lt(["There is a waiver of jury trial; arbitration is binding.", "A force majeure clause excuses delay.", "x"],
             terms=[["arbitration", "jury trial waiver"], "arbitration; force majeure", []])
    assert out == [1.0, 0.5, None]
    assert lt.required_columns() == {"terms"}
    assert get_reward("legal_terms").required_columns() == {"source"}


def test_scores_stay_in_unit_interval():
    lt = get_reward("legal_terms", lay_penalty=3.0)
    texts = ["", "responsible responsible", SOURCE, "x" * 10_000, "not " * 1000 + "liable"]
    assert all(s is None or 0.0 <= s <= 1.0 for s in lt(texts, source=[SOURCE] * len(texts)))


def test_shipped_glossary_size_and_lay_variants():
    g = load_glossary()
    assert len(g.entries) >= 150
    assert all(e.lay for e in g.entries)
    assert len({e.term for e in g.entries}) == len(g.entries)


def test_user_glossary_replaces_shipped(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"terms": [{"term": "escrow", "forms": ["escrowed"], "lay": ["held by a middleman"]}]}))
    lt = get_reward("legal_terms", glossary=str(path))
    src = "Funds are escrowed. The seller shall indemnify the buyer."
    # only 'escrow' is required now ('indemnify' is not in this glossary)
    assert lt(["The money is held by a middleman."], source=[src]) == [0.0]
    assert lt(["The funds stay in escrow."], source=[src]) == [1.0]


@pytest.mark.parametrize("content,msg", [
    ("{not json", "invalid JSON in glossary"),
    ('{"terms": []}', "non-empty 'terms' list"),
    ('{"terms": [{"term": "x", "lay": "y"}]}', "terms[0] ('x'): 'lay' must be a list of strings"),
    ('{"terms": [{"term": "x", "laymen": []}]}', "unknown key 'laymen'"),
])
def test_bad_glossary_is_a_user_error(tmp_path, content, msg):
    path = tmp_path / "g.json"
    path.write_text(content)
    with pytest.raises(UserError, match=None) as e:
        RewardSet([RewardSpec("legal_terms", params={"glossary": str(path)})])
    assert msg in str(e.value) and str(path) in str(e.value)
    with pytest.raises(UserError, match="glossary not found"):
        get_reward("legal_terms", glossary=str(tmp_path / "missing.json"))


def test_real_plain_english_summaries():
    path = SHARED_DATA / "legal" / "plain_english_contracts" / "all_v1.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    rows = list(json.loads(path.read_text()).values())
    src = [r["original_text"] for r in rows]
    lt = LegalTerms()
    ref = lt([r["reference_summary"] for r in rows], source=src)
    applicable = [s for s in ref if s is not None]
    assert len(applicable) >= 0.6 * len(rows)  # most passages use glossary terms
    # the source restates itself perfectly; human plain-English summaries drop or soften terms
    assert all(s in (None, 1.0) for s in lt(src, source=src))
    assert 0.1 < sum(applicable) / len(applicable) < 0.6
    lay = [lt.analyse(r["reference_summary"], {"source": r["original_text"]}).lay for r in rows]
    assert sum("responsible" in d.values() for d in lay) >= 3  # "responsible" for "liable" is spotted


def test_a_glossary_built_from_the_us_courts_glossary_drives_legal_terms(tmp_path, shared_data):
    """examples/legal/us_courts_glossary.py (the README's recipe) turns the US Courts glossary into a legal_terms
    glossary; the reward then asks for its terms, and keeps the shipped glossary's lay variants where they overlap."""
    import subprocess
    import sys

    out = tmp_path / "usc.json"
    script = Path(__file__).resolve().parents[2] / "examples" / "legal" / "us_courts_glossary.py"
    src = shared_data / "legal" / "us_courts_glossary" / "us-courts-glossary.json"
    subprocess.run([sys.executable, str(script), str(src), "--out", str(out)], check=True, capture_output=True)
    terms = {t["term"]: t for t in json.loads(out.read_text())["terms"]}
    assert len(terms) >= 230 and terms["bankruptcy"]["forms"] == ["bankruptcies"]
    assert terms["administrative office of the united states courts"]["forms"] == ["ao"]
    reward = get_reward("legal_terms", glossary=str(out), source_column="text")
    source = "The court granted a preliminary injunction, and the plaintiff filed an appeal."
    kept, lay = reward(["The court granted an injunction; the plaintiff filed an appeal.",
                        "The court issued a stop order and the plaintiff asked a higher court to look again."], text=[source] * 2)
    assert kept == 1.0 and lay < 0.5
