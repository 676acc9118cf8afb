"""Bootstrap and Wilson intervals, and bisection."""

import math

import numpy as np
import pytest

from cos_jax.analysis import stats
from cos_jax.analysis.stats import bisect_threshold, bootstrap_ci, paired_bootstrap_ci, wilson_interval


def test_bootstrap_covers_true_mean_and_shrinks_like_inverse_sqrt_n():
    rng = np.random.default_rng(0)
    big = rng.normal(2.0, 1.0, size=4000)
    est, low, high = bootstrap_ci(big)
    assert low < 2.0 < high
    assert low < est < high and est == pytest.approx(big.mean())
    # normal theory: width ≈ 2 · 1.96 / sqrt(n)
    assert high - low == pytest.approx(2 * 1.96 / math.sqrt(4000), rel=0.15)
    _, low_s, high_s = bootstrap_ci(big[:1000])
    assert (high_s - low_s) / (high - low) == pytest.approx(2.0, rel=0.2)


def test_bootstrap_is_deterministic_given_seed():
    values = np.random.default_rng(1).exponential(size=50)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_bootstrap_blocks_do_not_change_the_draws(monkeypatch):
    values = np.random.default_rng(2).normal(size=40)
    whole = bootstrap_ci(values, np.median, n_boot=300)
    monkeypatch.setattr(stats, "_MAX_DRAW_ELEMENTS", 40 * 7)  # 7 resamples per block
    assert bootstrap_ci(values, np.median, n_boot=300) == pytest.approx(whole)


def test_bootstrap_edge_cases_and_extra_axes():
    assert bootstrap_ci(np.array([4.5])) == (4.5, 4.5, 4.5)
    with pytest.raises(ValueError, match="empty input"):
        bootstrap_ci(np.array([]))
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(np.ones(3), level=1.0)
    values = np.random.default_rng(3).normal(size=(30, 4))
    est, low, high = bootstrap_ci(values, np.median, n_boot=200)
    assert est.shape == low.shape == high.shape == (4,)
    assert np.all(low <= high)


def test_paired_interval_is_narrower_than_unpaired_when_correlated():
    rng = np.random.default_rng(4)
    shared = rng.normal(0.0, 3.0, size=200)
    a = shared + 0.5 + rng.normal(0.0, 0.3, size=200)
    b = shared + rng.normal(0.0, 0.3, size=200)
    est, low, high = paired_bootstrap_ci(a, b)
    assert est == pytest.approx(np.mean(a - b))
    assert low < 0.5 < high and low > 0.0
    # unpaired: resample a and b independently; the shared component then dominates the width
    _, la, ha = bootstrap_ci(a, seed=1)
    _, lb, hb = bootstrap_ci(b, seed=2)
    assert high - low < 0.3 * math.hypot(ha - la, hb - lb)
    with pytest.raises(ValueError, match="equal shapes"):
        paired_bootstrap_ci(a, b[:-1])


def test_wilson_interval_matches_the_formula():
    # 7 successes of 20 at 95 %: z = 1.959964
    z, n, p = 1.959963984540054, 20, 7 / 20
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    got = wilson_interval(7, 20)
    assert got == pytest.approx((0.35, centre - half, centre + half), rel=1e-9)
    assert got[1] == pytest.approx(0.1812, abs=1e-4) and got[2] == pytest.approx(0.5671, abs=1e-4)
    p0, low0, high0 = wilson_interval(0, 10)
    assert p0 == 0.0 and low0 == 0.0 and 0.0 < high0 < 0.35
    assert wilson_interval(10, 10)[2] == 1.0
    assert wilson_interval(7, 20, level=0.99)[1] < got[1]
    with pytest.raises(ValueError, match="n > 0"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_bisection_finds_crossing_of_monotone_function():
    x, history = bisect_threshold(lambda t: 10.0 - t, 0.0, 16.0, target=3.0, iters=8)
    assert abs(x - 7.0) <= 16.0 / 2**9
    assert len(history) == 8 and history[0] == (8.0, 2.0)
    x_inc, _ = bisect_threshold(lambda t: t**2, 0.0, 4.0, target=2.0, iters=20, increasing=True)
    assert x_inc == pytest.approx(math.sqrt(2.0), abs=4.0 / 2**21)
    calls = []
    bisect_threshold(lambda t: calls.append(t) or 0.0, 0.0, 1.0, target=1.0, iters=5)
    assert all(isinstance(c, float) for c in calls) and len(calls) == 5
    with pytest.raises(ValueError, match="lo < hi"):
        bisect_threshold(lambda t: t, 1.0, 1.0, target=0.0)
    with pytest.raises(ValueError, match="NaN"):
        bisect_threshold(lambda t: math.nan, 0.0, 1.0, target=0.0)
