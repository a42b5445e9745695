"""math_answer exactness (issue 14): distinct exact numbers are never equal however small or large (no absolute
tolerance anywhere), a tolerance only for a shown rounding and relative to its digits; the labelled hard set
(benchmarks/math_hard_set.jsonl) through the public reward, bombs within 1 s each."""

from __future__ import annotations

import json
import random
import time
from fractions import Fraction
from pathlib import Path

import pytest
import sympy

from rewards import get_reward
from rewards.math import normalize, rounding_tolerance, verify
from rewards.math.tree import digits_bound
from rewards.sandbox import get_pool

HARD_SET = Path(__file__).resolve().parents[2] / "benchmarks" / "math_hard_set.jsonl"

EXACT = [
    # scientific notation, powers, fractions: exact, however small
    ("1e-30", "2e-30", False),
    ("1e-30", r"10^{-30}", True),
    ("1e-30", "1.0e-30", True),
    (r"10^{-30}", r"2\cdot10^{-30}", False),
    (r"10^{-30}", "0", False),
    ("0", r"10^{-30}", False),
    ("2^{-40}", "2^{-41}", False),
    ("2^{-1000}", "2^{-1001}", False),
    ("2^{-30000}", "0", False),
    (r"\frac{1}{10^{30}}", r"\frac{1}{10^{30}+1}", False),
    (r"6.02\times10^{23}", "6.02e23", True),
    (r"6.02\times10^{23}", r"6.03\times 10^{23}", False),
    ("1.0000000000001", "1", False),
    # huge
    ("10^{100}", "10^{100}+1", False),
    ("123456789012345678901234567890", "123456789012345678901234567891", False),
    ("2^{100}", "1267650600228229401496703205376", True),
    # exact irrationals that differ far below any fixed precision (evalf used to give up: "equal")
    (r"\sqrt{2}", r"\sqrt{2+10^{-80}}", False),
    (r"\sqrt{2}", r"\sqrt{2+10^{-200}}", False),
    (r"\sqrt{2}", r"\sqrt{2+10^{-2000}}", False),
    (r"\sqrt{2}", r"\sqrt{2+e^{-3000}}", False),
    ("x", r"\sqrt{x^2+10^{-200}}", False),
    (r"\pi", r"\pi+10^{-100}", False),
    ("e^{10^{-100}}", "1", False),
    (r"\cos(10^{-50})", "1", False),
    ("e^{-100}", "e^{-101}", False),
    (r"\sqrt{2}\cdot 10^{-300}", "0", False),
    # ... while equal ones sympy cannot simplify are still equal (they agree to every digit carried)
    (r"\sqrt{3+2\sqrt{2}}", r"1+\sqrt{2}", True),
    (r"2\sin(\pi/7)", r"\sqrt{2-2\cos(2\pi/7)}", True),
    (r"\sqrt{10^{-40}}", "10^{-20}", True),
    # rounding: only a decimal, only of a non-terminating gold, within half a unit of its last digit
    (r"\frac{1}{3}", "0.33", True),
    (r"\frac{1}{3}", "0.3", True),
    (r"\frac{1}{3}", "0.34", False),
    (r"\frac{1}{3}", "0.333333333333333333333333333333", True),
    (r"\frac{1}{3}+10^{-16}", "0.333333333333333333333333333333", False),  # 30 digits shown: no 1e-15 floor
    (r"\frac{2}{3}", "0.6666666666666666", True),  # a printed double
    (r"\frac{1}{3}", r"33.3\%", True),
    (r"\frac{1}{3}", r"34\%", False),
    (r"\frac{1}{8}", "0.13", False),  # 0.125 is a terminating gold: exact only
    (r"\pi", "3.14", True),
    (r"\pi", "3.15", False),
    (r"\pi", "3", False),  # an integer is exact, never a rounding
    (r"\sqrt{2}", "1.4", True),
    (r"\sqrt{2}", "1.5", False),
    (r"\pi\times10^{-30}", r"3.14\times10^{-30}", True),
    (r"\pi\times10^{-30}", r"3.15\times10^{-30}", False),
    (r"\sqrt{2}\cdot 10^{300}", r"1.414\times 10^{300}", True),
    (r"\sqrt{2}\cdot 10^{300}", r"1.415\times 10^{300}", False),
    # words after a number that are mathematics, not a unit
    ("2", "2 pi", False),
    ("2", "2pi", False),
    ("4", "4 sqrt2", False),
    ("2", "2 or 3", False),
    ("2", "2 times 3", False),
    ("5", "5 squared", False),
    ("7", "7 mod 3", False),
    ("2", r"2\text{ pi}", False),
    ("12", "12 square feet", True),
    ("5", "5 cm squared", True),
    ("0.1", "10 percent", True),
]


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    get_pool("verify").warm()


@pytest.mark.parametrize("gold,pred,expected", EXACT)
def test_exact_numbers(gold, pred, expected):
    assert verify(gold, pred) is expected


def _notations(m: int, e: int) -> list[str]:
    """The number m * 10^e written five ways."""
    out = [rf"{m}\times10^{{{e}}}", f"{m}e{e}", rf"{m} \cdot 10^{{{e}}}"]
    return out + ([rf"\frac{{{m}}}{{10^{{{-e}}}}}", f"{m}/10^{-e}"] if e < 0 else [str(m * 10**e)])


def test_random_tiny_and_huge_numbers_in_mixed_notations_are_equal_iff_their_values_are():
    rnd = random.Random(14)
    golds, preds, labels = [], [], []
    for _ in range(200):
        e = rnd.choice([rnd.randint(-60, -8), rnd.randint(15, 60)])
        m = rnd.randint(2, 999)
        m2 = m + rnd.choice([1, -1]) if rnd.random() < 0.5 else m
        e2 = e if rnd.random() < 0.7 else e + rnd.choice([1, -1])
        golds.append(rnd.choice(_notations(m, e)))
        preds.append(rf"\boxed{{{rnd.choice(_notations(m2, e2))}}}")
        labels.append(Fraction(m) * Fraction(10) ** e == Fraction(m2) * Fraction(10) ** e2)
    assert 40 < sum(labels) < 160  # both kinds are present
    scores = get_reward("math_answer")(preds, answer=golds)
    wrong = [(g, p) for g, p, s, want in zip(golds, preds, scores, labels) if (s == 1.0) != want]
    assert wrong == []


def test_rounding_tolerance_is_relative_to_the_digits_shown():
    assert rounding_tolerance(Fraction(1, 3), 1) == Fraction(1, 20) + Fraction(1, 3 * 10**15)
    assert rounding_tolerance(Fraction(1, 3), 40) == Fraction(1, 2 * 10**40)  # beyond a double: no floor
    tiny = Fraction(1, 3 * 10**30)
    assert rounding_tolerance(tiny, 32) == Fraction(1, 2 * 10**32) + tiny / 10**15  # floor: relative, not absolute
    assert rounding_tolerance(tiny, 32) < tiny / 10


def test_digits_bound_covers_small_values_built_by_powers():
    assert digits_bound(sympy.Rational(1, 10**200)) > 200
    assert digits_bound(sympy.exp(-3000)) > 3000 * 0.434
    assert digits_bound(sympy.Integer(2) ** sympy.Rational(1, 2)) < 10


def test_unit_words_are_stripped_math_words_are_not():
    assert normalize("18 dollars") == "18" and normalize("12 cm^2") == "12"
    assert normalize("2 pi") == "2 pi" and normalize("2 or 3") == "2 or 3"


# --- the labelled hard set -------------------------------------------------------------------------

def _hard_set() -> list[dict]:
    with open(HARD_SET) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_hard_set_is_labelled_and_covers_every_kind():
    rows = _hard_set()
    assert len(rows) >= 60
    assert all(set(r) == {"gold", "answer", "equal", "why", "kind"} and isinstance(r["equal"], bool) for r in rows)
    kinds = {r["kind"] for r in rows}
    assert {"tiny", "huge", "nested-frac", "interval", "set", "units", "percent", "latex", "negative", "injection",
            "bomb", "sci"} <= kinds
    assert 0.3 < sum(r["equal"] for r in rows) / len(rows) < 0.7


def test_every_hard_set_case_through_math_answer_matches_its_label():
    rows = [r for r in _hard_set() if r["kind"] != "bomb"]
    scores = get_reward("math_answer")([r["answer"] for r in rows], answer=[r["gold"] for r in rows])
    wrong = [(r["gold"], r["answer"], s) for r, s in zip(rows, scores) if (s == 1.0) != r["equal"]]
    assert wrong == []


@pytest.mark.parametrize("row", [r for r in _hard_set() if r["kind"] == "bomb"], ids=lambda r: r["answer"][:40])
def test_hard_set_bombs_are_judged_within_a_second(row):
    reward = get_reward("math_answer")
    t0 = time.monotonic()
    score = reward([row["answer"]], answer=[row["gold"]])[0]
    assert time.monotonic() - t0 < 1.0
    assert score == (1.0 if row["equal"] else 0.0)
