from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, bootstrap, ttest_rel, wilcoxon

from evals.stats import mcnemar_exact, paired_bootstrap, wilcoxon_signed_rank


# --- exact McNemar -----------------------------------------------------------------------------

@pytest.mark.parametrize("b, c", [(12, 32), (17, 23), (13, 13), (0, 5), (5, 0), (1, 0), (30, 5), (100, 130)])
def test_mcnemar_matches_scipy_binomial_test(b, c):
    assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-10, abs=1e-15)


def test_mcnemar_known_values():
    # the GRPO probe in issue 5: 12 improved vs 32 regressed -> p = 0.004
    assert round(mcnemar_exact(12, 32), 4) == 0.0037
    # by hand: b=0, c=5 -> 2 * (1/2)^5 = 0.0625; b=1, c=4 -> 2 * (1 + 5)/32 = 0.375
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625, abs=1e-15)
    assert mcnemar_exact(1, 4) == pytest.approx(0.375, abs=1e-15)
    # symmetric and capped at 1
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(7, 2) == mcnemar_exact(2, 7)


# --- paired bootstrap --------------------------------------------------------------------------

def test_bootstrap_no_difference_gives_p_one():
    a = [0.0, 0.25, 1.0, 0.5, 0.75]
    r = paired_bootstrap(a, a, n_resamples=500)
    assert r.p_value == 1.0 and r.mean_diff == 0.0 and (r.ci_low, r.ci_high) == (0.0, 0.0)


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, 120)
    b = np.clip(a + rng.normal(0.05, 0.2, 120), 0, 1)
    r = paired_bootstrap(a, b, n_resamples=20_000, seed=1)
    ref = bootstrap((b - a,), np.mean, n_resamples=20_000, method="percentile", random_state=2).confidence_interval
    assert r.mean_diff == pytest.approx(float(np.mean(b - a)), abs=1e-12)
    # two independent Monte Carlo runs of the same percentile interval: agree to MC error
    assert r.ci_low == pytest.approx(ref.low, abs=0.004)
    assert r.ci_high == pytest.approx(ref.high, abs=0.004)


def test_bootstrap_p_value_agrees_with_paired_t_test_on_normal_data():
    # for a mean difference of normal data the bootstrap p-value approaches the paired t-test's
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.2, 300)
    b = a + rng.normal(0.03, 0.25, 300)
    r = paired_bootstrap(a, b, n_resamples=40_000, seed=0)
    t = ttest_rel(b, a)
    assert 0.005 < t.pvalue < 0.2  # the test is informative only away from 0 and 1
    assert r.p_value == pytest.approx(t.pvalue, rel=0.15)


def test_bootstrap_large_effect_is_significant_and_seeded():
    a = [0.0] * 40 + [0.5] * 20
    b = [0.5] * 40 + [1.0] * 20
    r1 = paired_bootstrap(a, b, n_resamples=2000, seed=7)
    assert r1.p_value == pytest.approx(1 / 2001)  # constant differences: the smallest p possible
    noisy_b = [x + (0.5 if i % 3 else 0.0) for i, x in enumerate(a)]
    r2 = paired_bootstrap(a, noisy_b, n_resamples=2000, seed=7)
    r3 = paired_bootstrap(a, noisy_b, n_resamples=2000, seed=7)
    assert r2 == r3  # same seed, same numbers
    assert r2.p_value < 0.001 and r2.ci_low > 0


def test_bootstrap_rejects_unpaired_input():
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 0.0], [1.0])


def test_wilcoxon_drops_ties_and_matches_scipy():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 9, 300) / 8  # per-item pass@1 over 8 samples
    b = np.clip(a + rng.choice([-1, 0, 0, 1, 1], 300) / 8, 0, 1)
    d = b - a
    assert wilcoxon_signed_rank(a, b) == pytest.approx(wilcoxon(d[d != 0]).pvalue)
    assert wilcoxon_signed_rank(a, a) == 1.0
