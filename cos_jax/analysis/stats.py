"""Small statistics helpers for reports: bootstrap and Wilson intervals, bisection on noisy monotone curves."""

from __future__ import annotations

from collections.abc import Callable
from statistics import NormalDist

import numpy as np

_MAX_DRAW_ELEMENTS = 1 << 24  # resampled indices held at once (bootstrap draws are made in blocks of this size)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def _scalar(v: np.ndarray) -> float | np.ndarray:
    v = np.asarray(v)
    return float(v) if v.ndim == 0 else v


def bootstrap_ci(
    values: np.ndarray,
    stat: Callable[..., np.ndarray] = np.mean,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray]:
    """Percentile bootstrap (estimate, low, high) of `stat` over the first axis of `values`.

    `stat` must take an `axis` keyword (as np.mean and np.median do); the estimate is stat(values, axis=0).
    Extra axes are kept, so a [n, k] input gives [k] arrays; a 1-d input gives floats. Deterministic given
    `seed`; with n = 1 the interval collapses to the point. Raises ValueError on an empty input.
    """
    values = np.asarray(values)
    _check_level(level)
    if values.ndim == 0 or values.shape[0] == 0:
        raise ValueError(f"bootstrap_ci got an empty input (shape {values.shape}); need at least one sample")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    block = max(1, _MAX_DRAW_ELEMENTS // n)
    boots = []
    for start in range(0, n_boot, block):
        idx = rng.integers(0, n, size=(min(block, n_boot - start), n))
        boots.append(np.asarray(stat(values[idx], axis=1)))
    boot = np.concatenate(boots, axis=0)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    return _scalar(stat(values, axis=0)), _scalar(low), _scalar(high)


def paired_bootstrap_ci(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray]:
    """Bootstrap (estimate, low, high) of mean(a − b) for paired samples: pairs are resampled together.

    Narrower than comparing two unpaired intervals when a and b are positively correlated. a and b must have the
    same shape (ValueError otherwise).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal shapes, got {a.shape} and {b.shape}")
    return bootstrap_ci(a - b, np.mean, n_boot=n_boot, level=level, seed=seed)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Wilson score interval (p̂, low, high) for a proportion of `successes` out of `n` trials.

    Well behaved at 0 and n successes, unlike the normal approximation. Raises ValueError for n <= 0 or successes
    outside [0, n].
    """
    _check_level(level)
    if n <= 0:
        raise ValueError(f"wilson_interval needs n > 0 trials, got n = {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n = {n}], got {successes}")
    z = NormalDist().inv_cdf(1.0 - (1.0 - level) / 2.0)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * np.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds at the ends, free of rounding
    high = 1.0 if successes == n else min(1.0, centre + half)
    return p, float(low), float(high)


def bisect_threshold(
    f: Callable[[float], float],
    lo: float,
    hi: float,
    target: float,
    iters: int = 8,
    increasing: bool = False,
) -> tuple[float, list[tuple[float, float]]]:
    """Bisect for the x in [lo, hi] where a monotone f crosses `target` (decreasing f unless `increasing`).

    Each iteration evaluates f once at the bracket midpoint, so f is called exactly `iters` times and the
    returned x (the final bracket's midpoint) is within (hi − lo) / 2**(iters + 1) of the crossing for an exact f.
    For a noisy f (e.g. an accuracy estimated from samples) a wrong step near the crossing is possible, so the
    answer is approximate; inspect `history`, the list of (x, f(x)) evaluated in order. If f does not cross the
    target inside [lo, hi], x converges to the end where f is nearest the target. A NaN f(x) raises ValueError.
    """
    if not lo < hi:
        raise ValueError(f"need lo < hi, got lo = {lo}, hi = {hi}")
    history: list[tuple[float, float]] = []
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        value = float(f(mid))
        history.append((mid, value))
        if np.isnan(value):
            raise ValueError(f"f({mid}) returned NaN; history so far: {history}")
        # the crossing lies right of mid when f has not reached the target there yet
        if (value < target) if increasing else (value > target):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi), history
