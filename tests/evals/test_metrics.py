from __future__ import annotations

import itertools
import math

import pytest
from scipy.stats import binomtest

from evals.metrics import (
    classification_report,
    default_ks,
    majority_at_k,
    majority_correct,
    mean_interval,
    pass_at_k,
    wilson_interval,
)
from rltk.core.errors import UserError


# --- pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) --------------------------------------------

@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (1, 0, 1, 0.0),  # c = 0: never passes
        (10, 0, 5, 0.0),
        (10, 0, 10, 0.0),  # c = 0 with n = k
        (4, 1, 4, 1.0),  # n = k: passes iff any sample is correct
        (4, 0, 4, 0.0),
        (8, 3, 8, 1.0),
        (4, 1, 1, 0.25),  # k = 1: c / n
        (8, 3, 1, 0.375),
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 3, 4, 1 - 35 / 210),  # 1 - C(7,4)/C(10,4)
        (6, 5, 2, 1.0),  # n - c < k: some correct sample is always drawn
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_enumeration_of_subsets():
    # pass@k is the share of k-subsets of the n samples holding at least one correct sample
    for n in range(1, 8):
        for c in range(n + 1):
            samples = [1] * c + [0] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                share = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(share, abs=1e-12)


def test_pass_at_k_large_n_does_not_overflow():
    # C(200, 100) overflows floats; the product form does not
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5, abs=1e-12)
    assert pass_at_k(200, 0, 100) == 0.0


def test_pass_at_k_with_k_above_n_is_a_user_error():
    with pytest.raises(UserError, match="pass@5 needs at least 5 samples"):
        pass_at_k(4, 2, 5)
    with pytest.raises(UserError):
        pass_at_k(4, 2, 0)


def test_default_ks():
    assert default_ks(1) == [1]
    assert default_ks(8) == [1, 2, 4, 8]
    assert default_ks(6) == [1, 2, 4, 6]


# --- Wilson interval ---------------------------------------------------------------------------

@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (8, 10), (1, 3), (57, 200), (150, 300), (1, 1000)])
def test_wilson_matches_scipy(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)


def test_wilson_textbook_value():
    # Newcombe (1998), Stat Med 17:857, table I, example (c): 81 of 263 -> 0.2553 to 0.3662
    lo, hi = wilson_interval(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_wilson_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.0 < hi < 0.2  # never a zero-width interval at 0%
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_mean_interval_is_wilson_on_summed_scores():
    scores = [0.25, 0.5, 1.0, 0.0, 0.75]
    assert mean_interval(scores) == wilson_interval(2.5, 5)
    lo, hi = mean_interval([0.0] * 50)  # all zero: still an interval, not a point
    assert lo == 0.0 and hi > 0.0


# --- maj@k -------------------------------------------------------------------------------------

def test_majority_correct_votes_ties_and_none():
    assert majority_correct(["7", "5", "7"], [True, False, True]) is True
    assert majority_correct(["5", "7", "5"], [False, True, False]) is False
    assert majority_correct(["5", "7"], [False, True]) is False  # tie: the answer seen first wins
    assert majority_correct([None, None, "7"], [False, False, True]) is True  # None does not vote
    assert majority_correct([None, None], [False, False]) is False


def test_majority_at_k_averages_disjoint_chunks():
    answers = ["1", "1", "2", "2", "2", "1"]
    correct = [True, True, False, False, False, True]
    assert majority_at_k(answers, correct, 6) == 1.0  # 3:3 tie: "1" was seen first, and is right
    # chunk [1,1] -> right, [2,2] -> wrong, [2,1] -> "2" first -> wrong: 1/3
    assert majority_at_k(answers, correct, 2) == pytest.approx(1 / 3)
    assert majority_at_k(answers, correct, 1) == pytest.approx(3 / 6)
    with pytest.raises(UserError):
        majority_at_k(answers, correct, 7)


# --- classification ------------------------------------------------------------------------------

def test_classification_report_hand_values():
    labels = ["A", "B", "C"]
    gold = ["A", "A", "B", "B", "A"]
    pred = ["A", "B", "B", None, "A"]
    rep = classification_report(gold, pred, labels)
    pa, pb = rep["per_class"]["A"], rep["per_class"]["B"]
    # A: tp 2, support 3, predicted 2 -> recall 2/3, precision 1, F1 0.8
    assert (pa["support"], pa["predicted"]) == (3, 2)
    assert pa["accuracy"] == pytest.approx(2 / 3) and pa["f1"] == pytest.approx(0.8)
    # B: tp 1, support 2, predicted 2 -> 0.5, 0.5, 0.5
    assert pb["accuracy"] == pytest.approx(0.5) and pb["f1"] == pytest.approx(0.5)
    # C never occurs: not averaged
    assert rep["labels_averaged"] == ["A", "B"]
    assert rep["macro_f1"] == pytest.approx((0.8 + 0.5) / 2)
    assert math.isclose(rep["per_class"]["C"]["f1"], 0.0)
