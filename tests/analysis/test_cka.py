"""CKA against direct n×n kernel formulas, plus its invariances."""

import numpy as np
import pytest

from cos_jax.analysis import cka
from cos_jax.analysis.cka import batched_cka, cka_unbiased, hsic_unbiased, linear_cka


def _direct_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    kc, lc = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.trace(kc @ lc) / np.sqrt(np.trace(kc @ kc) * np.trace(lc @ lc)))


def _direct_hsic_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    n = x.shape[0]
    kx, ky = x @ x.T, y @ y.T
    np.fill_diagonal(kx, 0.0)
    np.fill_diagonal(ky, 0.0)
    one = np.ones(n)
    value = (
        np.trace(kx @ ky)
        + (one @ kx @ one) * (one @ ky @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ kx @ ky @ one)
    )
    return float(value / (n * (n - 3)))


def _pair(rng: np.random.Generator, n: int = 23, p: int = 7, q: int = 5, offset: float = 0.0):
    x = rng.normal(size=(n, p)) + offset
    y = x[:, :q] @ rng.normal(size=(q, q)) + 0.5 * rng.normal(size=(n, q)) + offset
    return x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_cka_matches_direct_kernel_formula(seed):
    x, y = _pair(np.random.default_rng(seed), offset=3.0)
    assert linear_cka(x, y) == pytest.approx(_direct_linear_cka(x, y), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hsic_unbiased_matches_direct_formula(seed):
    x, y = _pair(np.random.default_rng(seed), offset=1.5)  # the estimator is translation invariant
    assert hsic_unbiased(x, y) == pytest.approx(_direct_hsic_unbiased(x, y), rel=1e-9, abs=1e-12)
    assert hsic_unbiased(x, x) == pytest.approx(_direct_hsic_unbiased(x, x), rel=1e-9)


def test_hsic_feature_space_formula_holds_without_centring(monkeypatch):
    # centring (done for accuracy) zeroes the column sums; switch it off to exercise every term of the formula
    monkeypatch.setattr(cka, "_means", lambda mats: [np.zeros(m.shape[1]) for m in mats])
    x, y = _pair(np.random.default_rng(7), offset=0.8)
    assert hsic_unbiased(x, y) == pytest.approx(_direct_hsic_unbiased(x, y), rel=1e-9, abs=1e-12)


def test_cka_unbiased_matches_direct_formula():
    x, y = _pair(np.random.default_rng(3))
    direct = _direct_hsic_unbiased(x, y) / np.sqrt(_direct_hsic_unbiased(x, x) * _direct_hsic_unbiased(y, y))
    assert cka_unbiased(x, y) == pytest.approx(direct, rel=1e-9)


def test_chunked_accumulation_matches_single_chunk(monkeypatch):
    x, y = _pair(np.random.default_rng(4), n=50)
    whole = linear_cka(x, y), hsic_unbiased(x, y), cka_unbiased(x, y)
    monkeypatch.setattr(cka, "_CHUNK_ELEMENTS", 21)  # 3 rows per chunk
    assert (linear_cka(x, y), hsic_unbiased(x, y), cka_unbiased(x, y)) == pytest.approx(whole, rel=1e-10)


@pytest.mark.parametrize("fn", [linear_cka, cka_unbiased])
def test_invariant_to_orthogonal_transform_and_isotropic_scale(fn):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert fn(x, 3.7 * x @ q) == pytest.approx(1.0, abs=1e-10)
    y = rng.normal(size=(40, 4))
    assert fn(x @ q, 0.2 * y) == pytest.approx(fn(x, y), abs=1e-10)


def test_self_similarity_symmetry_and_dtype():
    x, y = _pair(np.random.default_rng(6))
    for fn in (linear_cka, cka_unbiased):
        assert fn(x, x) == pytest.approx(1.0, abs=1e-12)
        assert fn(x, y) == pytest.approx(fn(y, x), rel=1e-12)
        assert fn(x.astype(np.float32), y.astype(np.float32)) == pytest.approx(fn(x, y), rel=1e-5)
    assert hsic_unbiased(x, y) == pytest.approx(hsic_unbiased(y, x), rel=1e-12)


def test_independent_features_give_small_cka():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(4000, 8)), rng.normal(size=(4000, 8))
    assert 0.0 <= linear_cka(x, y) < 0.05
    assert abs(cka_unbiased(x, y)) < 0.05
    # with few samples the biased estimate is inflated, the unbiased one much less so
    xs, ys = x[:40], y[:40]
    assert abs(cka_unbiased(xs, ys)) < linear_cka(xs, ys)


def test_degenerate_inputs_never_give_nan():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(10, 3))
    constant = np.full((10, 4), 0.1)
    for fn in (linear_cka, cka_unbiased):
        assert fn(x, constant) == 0.0
        assert fn(constant, constant) == 0.0
        assert fn(np.zeros((10, 2)), x) == 0.0
    assert linear_cka(x[:1], x[:1]) == 0.0
    # constant rows whose centring leaves rounding residue still count as constant
    for _ in range(40):
        n = int(rng.integers(4, 200))
        row = rng.normal(size=4) * rng.uniform(0.1, 100.0)
        noisy_constant = np.broadcast_to(row, (n, 4)).copy()
        other = rng.normal(size=(n, 3))
        assert linear_cka(other, noisy_constant) == 0.0
        assert cka_unbiased(other, noisy_constant) == 0.0


def test_input_errors():
    x = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"n >= 4.*n = 3"):
        hsic_unbiased(x, x)
    with pytest.raises(ValueError, match="n = 3"):
        cka_unbiased(x, x)
    with pytest.raises(ValueError, match="same number of rows"):
        linear_cka(np.ones((4, 2)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="n = 0"):
        linear_cka(np.ones((0, 2)), np.ones((0, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        linear_cka(np.array([[0.0], [np.nan], [1.0]]), np.ones((3, 1)))


def test_batched_cka_broadcasts_leading_axes():
    rng = np.random.default_rng(9)
    xs = rng.normal(size=(3, 2, 30, 5))
    ys = rng.normal(size=(2, 30, 4))
    for unbiased, fn in ((False, linear_cka), (True, cka_unbiased)):
        out = batched_cka(xs, ys, unbiased=unbiased)
        assert out.shape == (3, 2) and out.dtype == np.float64
        expected = [[fn(xs[i, j], ys[j]) for j in range(2)] for i in range(3)]
        np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert batched_cka(xs[0, 0], xs[0, 0]).shape == ()
