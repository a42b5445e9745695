"""math_answer hardening (issue 12): nested fractions in linear time, ``i`` as the imaginary unit
where the gold is complex, exact numbers compared exactly, rounded decimals within the digits shown."""

from __future__ import annotations

import re
import time
from fractions import Fraction

import pytest

from rewards import RewardSet, RewardSpec, get_reward
from rewards.math import VerifyOptions, verify
from rewards.sandbox import get_pool

# --- nested fractions --------------------------------------------------------------------------


def nested(depth: int, inner: str = "2") -> str:
    return r"\frac{1}{" * depth + inner + "}" * depth


# A verdict at all means the check finished inside the hard limit (past it verify raises). The bound
# below is that limit, not a stopwatch figure: ANTLR's first prediction over a 40-deep interval takes
# 0.5 s on one CPU and 3.4 s on a busy CI machine, the old exponential build took minutes.
LIMIT_S = VerifyOptions().timeout_s


def timed_verify(gold: str, pred: str) -> tuple[bool, float]:
    t0 = time.monotonic()
    verdict = verify(gold, pred)  # raises VerificationTimeout past the 5 s limit
    return verdict, time.monotonic() - t0


def test_nested_fractions_verify_in_linear_time():
    """Each level of an unevaluated 1/(1/(...)) doubled sympy's numeric evaluation: depth 19 ran past
    the 5 s limit (None). Now the tree is evaluated once, bottom-up: depth 40 takes milliseconds."""
    get_pool("verify").warm()
    for depth in (1, 10, 19, 25, 40):
        value = "2" if depth % 2 == 0 else r"\frac{1}{2}"
        right, t_right = timed_verify(value, nested(depth))
        wrong, t_wrong = timed_verify("3", nested(depth))
        assert (right, wrong) == (True, False), depth
        assert t_right < LIMIT_S and t_wrong < LIMIT_S, (depth, t_right, t_wrong)


def test_continued_fraction_40_deep_is_its_exact_value():
    depth = 40
    value = Fraction(1)
    for _ in range(depth):
        value = 1 / (1 + value)
    cf = r"\frac{1}{1+" * depth + "1" + "}" * depth
    gold = rf"\frac{{{value.numerator}}}{{{value.denominator}}}"
    assert timed_verify(gold, cf)[0] is True
    near = rf"\frac{{{value.numerator + 1}}}{{{value.denominator}}}"
    verdict, elapsed = timed_verify(near, cf)
    assert verdict is False and elapsed < LIMIT_S


@pytest.mark.parametrize("pred", [
    r"\frac{" * 40 + "1" + "}{2}" * 40,  # nested in the numerator
    r"\frac1{" * 40 + "2" + "}" * 40,  # shorthand \frac1{...}
    "2^{" + nested(40) + "}",  # in an exponent (checked by the size guard)
    "[" + nested(40) + ", 5]",  # in an interval endpoint (the library compares endpoints)
    r"\begin{pmatrix} " + nested(40) + r" \\ 1 \end{pmatrix}",
    r"\log(" * 10 + "2" + ")" * 10,  # functions nested past the cap: refused
])
def test_nested_constructs_return_quickly(pred):
    get_pool("verify").warm()
    verdict, elapsed = timed_verify("3", pred)
    assert verdict is False and elapsed < LIMIT_S


def test_nested_fraction_rewards_are_scored_not_failed():
    rs = RewardSet([RewardSpec("math_answer")])
    s = rs.score([rf"\boxed{{{nested(40)}}}", rf"\boxed{{{nested(39)}}}"], answer=["2", "2"])
    assert s.components["math_answer"] == [1.0, 0.0]
    assert s.failures["math_answer"] == 0


# --- the imaginary unit ------------------------------------------------------------------------

COMPLEX = [
    # (gold, pred, equal?) — gold has i as its only unknown: i is the imaginary unit on both sides
    ("3+4i", "4i+3", True),
    ("3+4i", "3+4i^5", True),  # i^5 = i
    ("3+4i", "3+4j", False),  # j is not the imaginary unit here
    ("3+4i", "3-4i", False),
    ("3+4i", r"3+4\mathrm{i}", True),
    ("3+4i", r"3+4\mathit{i}", True),
    ("3+4i", r"3+4\text{i}", True),
    ("3+4i", "3+4I", True),
    ("-1 + i", "i - 1", True),
    ("-1 + i", "i^3 + i^2 + 2i", True),
    ("2i", "(1+i)^2", True),
    ("-i", r"\frac{1}{i}", True),
    ("i", "-i^{3}", True),
    ("i", "1", False),
    (r"\frac{1}{2} - \frac{\sqrt{3}}{2}i", r"\frac{1-\sqrt{3}i}{2}", True),
    (r"\frac{1}{2} - \frac{\sqrt{3}}{2}i", r"\frac{1}{2} + \frac{\sqrt{3}}{2}i", False),
    ("6 - 5i", "6+5i", False),
    # gold not complex: i stays a variable (index, unknown), as before
    ("2", "(1+i)(1-i)", False),
    ("x + i", "i + x", True),
    ("i + x", "x - i", False),
    ("[i, 2]", "[i,2]", True),
    # "4i" is a term, not the number 4 with a unit "i" (likewise "2x", "2k")
    ("4", "4i", False),
    ("2", "2x", False),
    ("2k", "2", False),
    ("12", "12 cm", True),
    ("18", "18 dollars", True),
]


@pytest.mark.parametrize("gold,pred,expected", COMPLEX)
def test_imaginary_unit(gold, pred, expected):
    assert verify(gold, pred) is expected


_A_PLUS_BI = re.compile(r"\s*(-?\d+)\s*([+-])\s*(\d*)i\s*")


def test_math500_complex_golds_verify_against_equivalent_forms(math500):
    """Every MATH-500 gold of the form a + bi: equal to itself, to bi + a and to a + b i^5 (which
    needs i^2 = -1), not to its conjugate; through the math_answer reward."""
    golds = [r["answer"] for r in math500 if _A_PLUS_BI.fullmatch(r["answer"])]
    assert len(golds) == 6  # 6 - 5i, 6+9i, -2 + 7i, 1+274i, 1+2i, 1 - 12i
    same, conj = [], []
    for g in golds:
        a, sign, b = _A_PLUS_BI.fullmatch(g).groups()
        b = b or "1"
        same += [g, f"{sign}{b}i + {a}", f"{a} {sign} {b} i^{{5}}", rf"{a} {sign} {b}\mathrm{{i}}"]
        conj.append(f"{a} {'-' if sign == '+' else '+'} {b}i")
    score = get_reward("math_answer")
    completions = [rf"so $\boxed{{{p}}}$" for p in same]
    assert score(completions, answer=[g for g in golds for _ in range(4)]) == [1.0] * len(same)
    assert score([rf"\boxed{{{p}}}" for p in conj], answer=golds) == [0.0] * len(golds)


# --- exact numbers, rounded decimals -----------------------------------------------------------

NUMBERS = [
    # different exact numbers are different, however small or large (no absolute tolerance)
    ("1e-12", "2e-12", False),
    ("1e-12", "10^{-12}", True),
    ("1/10^15", "2/10^15", False),
    (r"\frac{1}{10^{15}}", r"\frac{2}{10^{15}}", False),
    (r"1\times10^{-12}", r"2\times10^{-12}", False),
    ("2^{-50}", "2^{-51}", False),
    ("2^{-50}", r"\frac{1}{1125899906842624}", True),
    ("10^{20}", "100000000000000000001", False),
    ("10^{20}", "100000000000000000000", True),
    ("1e20", "100000000000000000001", False),
    (r"\sqrt{2} \cdot 10^{-20}", r"\sqrt{3} \cdot 10^{-20}", False),
    (r"\sqrt{2} \cdot 10^{-20}", r"\frac{\sqrt{8}}{2 \cdot 10^{20}}", True),
    ("1e999", r"\infty", False),
    (r"\infty", "5", False),
    (r"\infty", "10^{100}", False),
    (r"-\infty", r"\infty", False),
    (r"(5, \infty)", "(5, 7)", False),
    # a decimal with k >= 2 digits after the point rounds an irrational/non-terminating gold:
    # within half a unit of its last digit (and double precision, for printed floats)
    (r"\frac{\sqrt{2}}{2}", "0.707", True),
    (r"\frac{\sqrt{2}}{2}", "0.708", False),
    (r"\frac{\sqrt{2}}{2}", "0.7071067811865476", True),
    (r"\pi", "3.14159265", True),
    (r"\pi", "3.14159266", False),
    (r"\frac{2}{3}", "0.67", True),
    (r"\frac{2}{3}", "0.66", False),
    (r"\frac{2}{3}", "0.6666666666666666", True),
    (r"\frac{1}{3}", "0.3", True),  # a rounding to 1 place (issue 14)
    ("2^{-3}", "0.125", True),
    ("2^{-3}", "0.12", False),  # a terminating gold is matched exactly, not rounded
    ("2^{-3}", "0.13", False),
    (r"\sqrt{2}\times 10^{-10}", r"1.41\times10^{-10}", True),  # scientific notation: the mantissa's digits
    (r"\sqrt{2}\times 10^{-10}", r"1.42\times10^{-10}", False),
    (r"\frac{14}{3}", "4.667e+00", True),
    # a choice label is text, never Euler's number
    (r"\text{(E)}", "2.72", False),
    (r"\text{(E)}", "E", True),
]


@pytest.mark.parametrize("gold,pred,expected", NUMBERS)
def test_exact_numbers_and_rounding(gold, pred, expected):
    assert verify(gold, pred) is expected
