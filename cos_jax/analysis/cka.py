"""Centred kernel alignment (linear kernels) between two representations of the same samples.

Rows are samples (tokens), columns are features. Everything is computed in float64 from feature-space Gram
matrices accumulated over row chunks, so no n×n matrix and no full float64 copy of the inputs is ever built.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

_CHUNK_ELEMENTS = 1 << 22  # rows per chunk × widest feature count: ~32 MiB of float64 per chunk
_REL_VAR_TOL = 1e-20  # centred / raw sum of squares below this counts as constant (relative spread < 1e-10)


def _check(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"expected 2-d [n, features] inputs, got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same number of rows (samples), got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError("x and y have no rows (n = 0)")
    return x, y


def _means(mats: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [m.sum(axis=0, dtype=np.float64) / m.shape[0] for m in mats]


def _chunks(mats: Sequence[np.ndarray], means: Sequence[np.ndarray]) -> Iterator[list[np.ndarray]]:
    """Yield aligned float64 row chunks of every matrix, minus its column means."""
    n = mats[0].shape[0]
    rows = max(1, _CHUNK_ELEMENTS // max(1, max(m.shape[1] for m in mats)))
    for start in range(0, n, rows):
        yield [m[start : start + rows].astype(np.float64) - mu for m, mu in zip(mats, means, strict=True)]


def _constant(centred_ss: float, mean: np.ndarray, n: int) -> bool:
    """Whether the centred sum of squares is only the rounding residue of centring (no real variance)."""
    return centred_ss <= _REL_VAR_TOL * (centred_ss + n * float(mean @ mean))


def _finite(*values: float | np.ndarray) -> None:
    if not all(np.all(np.isfinite(v)) for v in values):
        raise ValueError("non-finite values in the inputs (NaN or inf)")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA ||yᵀx||²_F / (||xᵀx||_F ||yᵀy||_F) of column-centred x [n, p] and y [n, q].

    A representation with no variance across samples (constant rows, or n = 1; relative spread below 1e-10) has
    no similarity structure, so the score is then defined as 0.0, never NaN. Raises ValueError on non-finite inputs.
    """
    x, y = _check(x, y)
    xtx = np.zeros((x.shape[1],) * 2)
    yty = np.zeros((y.shape[1],) * 2)
    ytx = np.zeros((y.shape[1], x.shape[1]))
    means = _means([x, y])
    for xc, yc in _chunks([x, y], means):
        xtx += xc.T @ xc
        yty += yc.T @ yc
        ytx += yc.T @ xc
    _finite(xtx, yty, ytx)
    n = x.shape[0]
    if _constant(np.trace(xtx), means[0], n) or _constant(np.trace(yty), means[1], n):
        return 0.0
    den = np.linalg.norm(xtx) * np.linalg.norm(yty)
    if den <= 0.0:
        return 0.0
    return float(np.sum(ytx * ytx) / den)


def _unbiased_hsics(mats: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]]) -> tuple[list[float], list[bool]]:
    """HSIC₁ for each (i, j) pair of matrices, and which matrices are constant, from one pass of feature-space sums.

    The estimator is invariant to translating the features, so the inputs are centred first for accuracy.
    With r_i = ||a_i||², s = Σ a_i, G = aᵀb: tr(K̃L̃) = ||G||² − Σ rᵃrᵇ, 1ᵀK̃1 = ||sᵃ||² − Σ rᵃ and
    1ᵀK̃L̃1 = sᵃᵀ G sᵇ − sᵃ·Σ rᵇ a_i − sᵇ·Σ rᵃ b_i + Σ rᵃrᵇ.
    """
    n = mats[0].shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs n >= 4 samples, got n = {n}")
    k = len(mats)
    grams = {pair: np.zeros((mats[pair[0]].shape[1], mats[pair[1]].shape[1])) for pair in pairs}
    sums = [np.zeros(m.shape[1]) for m in mats]
    sq_sums = np.zeros(k)
    # weighted[(i, j)] = Σ_rows r^j a^i (vector over features of i); prods[(i, j)] = Σ_rows r^i r^j
    weighted = {(i, j): np.zeros(mats[i].shape[1]) for i, j in pairs} | {
        (j, i): np.zeros(mats[j].shape[1]) for i, j in pairs
    }
    prods = {pair: 0.0 for pair in pairs}
    means = _means(mats)
    for chunk in _chunks(mats, means):
        r = [np.einsum("ij,ij->i", c, c) for c in chunk]
        for i, c in enumerate(chunk):
            sums[i] += c.sum(axis=0)
            sq_sums[i] += r[i].sum()
        for i, j in pairs:
            grams[(i, j)] += chunk[i].T @ chunk[j]
            prods[(i, j)] += float(r[i] @ r[j])
        for i, j in weighted:
            weighted[(i, j)] += r[j] @ chunk[i]
    _finite(sq_sums, *grams.values())
    out = []
    for i, j in pairs:
        g, sa, sb = grams[(i, j)], sums[i], sums[j]
        tr_kl = np.sum(g * g) - prods[(i, j)]
        one_k_one = sa @ sa - sq_sums[i]
        one_l_one = sb @ sb - sq_sums[j]
        one_kl_one = sa @ g @ sb - sa @ weighted[(i, j)] - sb @ weighted[(j, i)] + prods[(i, j)]
        hsic = tr_kl + one_k_one * one_l_one / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * one_kl_one
        out.append(float(hsic / (n * (n - 3))))
    return out, [_constant(sq_sums[i], means[i], n) for i in range(k)]


def hsic_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased HSIC estimator (Song et al., 2012) with linear kernels xxᵀ and yyᵀ; needs n >= 4 rows.

    Can be slightly negative for independent features. Computed without n×n matrices.
    """
    x, y = _check(x, y)
    return _unbiased_hsics([x, y], [(0, 1)])[0][0]


def cka_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """CKA built from the unbiased HSIC: HSIC₁(x, y) / sqrt(HSIC₁(x, x) HSIC₁(y, y)); needs n >= 4 rows.

    Near 0 for independent features even when n is not much larger than the feature count, and can be slightly
    negative. Returns 0.0 when either input is constant across samples or its self-HSIC is non-positive.
    """
    x, y = _check(x, y)
    (hxy, hxx, hyy), constant = _unbiased_hsics([x, y], [(0, 1), (0, 0), (1, 1)])
    if any(constant) or hxx <= 0.0 or hyy <= 0.0:
        return 0.0
    return float(hxy / np.sqrt(hxx * hyy))


def batched_cka(xs: np.ndarray, ys: np.ndarray, unbiased: bool = False) -> np.ndarray:
    """CKA for each leading index of xs [..., n, p] and ys [..., n, q] (leading axes broadcast).

    Returns a float64 array with the broadcast leading shape (0-d for plain 2-d inputs). `unbiased` selects
    `cka_unbiased` instead of `linear_cka`.
    """
    xs, ys = np.asarray(xs), np.asarray(ys)
    if xs.ndim < 2 or ys.ndim < 2:
        raise ValueError(f"expected [..., n, features] inputs, got shapes {xs.shape} and {ys.shape}")
    lead = np.broadcast_shapes(xs.shape[:-2], ys.shape[:-2])
    xs = np.broadcast_to(xs, lead + xs.shape[-2:])
    ys = np.broadcast_to(ys, lead + ys.shape[-2:])
    fn = cka_unbiased if unbiased else linear_cka
    out = np.empty(lead, np.float64)
    for idx in np.ndindex(*lead):
        out[idx] = fn(xs[idx], ys[idx])
    return out
