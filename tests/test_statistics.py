"""Uncertainties that cover: known-answer series, deterministic seeds (issue "Results a scientist can trust")."""

from __future__ import annotations

import numpy as np
import pytest


def ar1(rng, n: int, phi: float) -> np.ndarray:
    """AR(1) series with mean 0 and unit innovations (correlation time (1 + φ)/(1 − φ) samples)."""
    from scipy.signal import lfilter

    e = rng.normal(size=n)
    e[0] /= np.sqrt(1 - phi**2)
    return lfilter([1.0], [1.0, -phi], e)


@pytest.mark.parametrize("phi,n", [(0.0, 1000), (0.9, 2000)])
def test_blocking_95_percent_intervals_cover_the_true_mean(phi, n):
    from deepeut.utils.statistics import blocking_estimate

    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(400):
        est = blocking_estimate(ar1(rng, n, phi))
        hits += abs(est.mean) <= est.ci95
    assert 0.90 <= hits / 400 <= 0.98


def test_blocking_flags_a_series_too_short_for_its_correlation_time():
    from deepeut.utils.statistics import blocking_estimate

    rng = np.random.default_rng(3)
    long = [blocking_estimate(ar1(rng, 4000, 0.5)).plateau for _ in range(20)]
    short = [blocking_estimate(ar1(rng, 256, 0.995)).plateau for _ in range(20)]
    assert sum(long) >= 18 and sum(short) <= 4


def test_t_factor_for_three_time_blocks():
    from deepeut.utils.statistics import t_half_width

    assert t_half_width(1.0, 2) == pytest.approx(4.303, abs=1e-3)  # 3 blocks: t, not 1.96
    assert t_half_width(1.0, 1000) == pytest.approx(1.962, abs=1e-3)
    assert np.isnan(t_half_width(1.0, 0))


def test_ratio_of_means_and_its_propagated_error_cover_the_true_ratio():
    """Replica pairs (a, b) with known means 2 and 4 (true ratio 0.5): the ratio of means differs from the mean
    of ratios on skewed data, and its propagated 95 % interval covers 0.5 in 90–98 % of 400 experiments."""
    from deepeut.utils.statistics import ratio_of_means, t_half_width

    r, sem = ratio_of_means([1.0, 3.0], [1.0, 3.0])
    assert r == 1.0 and sem == pytest.approx(0.0, abs=1e-12)  # perfectly correlated: no error in the ratio
    assert ratio_of_means([1.0, 3.0], [2.0, 2.0])[0] == 1.0 and np.mean([0.5, 1.5]) == 1.0
    assert ratio_of_means([1.0, 1.0], [1.0, 3.0])[0] == 0.5 != np.mean([1.0, 1 / 3])
    rng = np.random.default_rng(21)
    hits = 0
    for _ in range(400):
        a, b = rng.normal(2.0, 0.2, 8), rng.normal(4.0, 0.3, 8)
        r, sem = ratio_of_means(a, b)
        hits += abs(r - 0.5) <= t_half_width(sem, 7)
    assert 0.90 <= hits / 400 <= 0.98
