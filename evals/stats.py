"""Paired significance tests for two runs on the same items.

* :func:`mcnemar_exact` — binary scores (greedy accuracy): only the discordant items carry
  information; under "no difference" each of them is equally likely to favour A or B, so the
  count favouring B is Binomial(b + c, 1/2) and the two-sided p-value is exact.
* :func:`paired_bootstrap` — continuous per-item scores (pass@1 from several samples, reward
  totals): resample items with replacement, keeping each item's pair together.

>>> round(mcnemar_exact(12, 32), 4)    # 12 items got better, 32 got worse
0.0037
>>> r = paired_bootstrap([0.0, 0.5, 1.0, 0.25], [0.0, 0.5, 1.0, 0.25], n_resamples=200)
>>> r.p_value, r.mean_diff
(1.0, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# scipy.stats (about a second to import) is imported where it is used, so `import evals` stays light


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` (A wrong, B right) and ``c``
    (A right, B wrong): ``min(1, 2 * P[X <= min(b, c)])`` with ``X ~ Binomial(b + c, 1/2)``.
    No discordant pairs gives 1.0."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    from scipy.stats import binom

    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(b, c), n, 0.5)))


@dataclass(frozen=True)
class BootstrapResult:
    mean_diff: float  # mean over items of (b - a)
    ci_low: float  # percentile interval of the mean difference
    ci_high: float
    p_value: float  # two-sided, H0: mean difference 0
    n_resamples: int


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> BootstrapResult:
    """Paired bootstrap of the mean difference ``mean(b - a)`` over items.

    The interval is the percentile interval of the resampled means. The p-value tests
    "mean difference is 0" by resampling the differences re-centred on 0 (Efron & Tibshirani
    1993, sec. 16.4) and counting resampled means at least as far from 0 as the observed one;
    the +1 in numerator and denominator keeps it a valid p-value (never exactly 0).
    A run with no difference on any item gives p = 1.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and of equal length, got {x.shape} and {y.shape}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("paired bootstrap needs at least one item")
    d = y - x  # [n]
    observed = float(d.mean())
    if np.all(d == d[0]):  # constant differences: resampling cannot move the mean
        p = 1.0 if observed == 0 else 1.0 / (n_resamples + 1)
        return BootstrapResult(observed, observed, observed, p, n_resamples)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)  # [R]
    chunk = max(1, 2_000_000 // n)  # bound memory: chunk x n indices at a time
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))  # [r, n]
        means[start:stop] = d[idx].mean(axis=1)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    centred = means - observed  # the bootstrap distribution moved onto H0
    extreme = int(np.sum(np.abs(centred) >= abs(observed) - 1e-12))
    p = (extreme + 1) / (n_resamples + 1)
    return BootstrapResult(observed, float(lo), float(hi), float(min(1.0, p)), n_resamples)


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of the Wilcoxon signed-rank test on the paired differences ``b - a`` (zero
    differences dropped, scipy's exact or normal-approximation method); 1.0 when every pair is equal."""
    from scipy.stats import wilcoxon

    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    return float(wilcoxon(d).pvalue)
