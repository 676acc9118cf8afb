"""The in-graph JAX CKA equals the float64 numpy reference (`cos_jax.analysis.cka`), batched."""

import numpy as np

from cos_jax.analysis import cka
from cos_jax.analysis.cka_jax import paired_cka_jax


def test_jax_cka_matches_the_numpy_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 200, 12)).astype(np.float32)
    y = (x @ rng.normal(size=(12, 7)) + 0.8 * rng.normal(size=(3, 2, 200, 7)) + 5.0).astype(np.float32)
    out = paired_cka_jax(x, y)
    assert out["linear"].shape == out["unbiased"].shape == (3, 2)
    for i in range(3):
        for j in range(2):
            np.testing.assert_allclose(float(out["linear"][i, j]), cka.linear_cka(x[i, j], y[i, j]), atol=2e-5)
            np.testing.assert_allclose(float(out["unbiased"][i, j]), cka.cka_unbiased(x[i, j], y[i, j]), atol=2e-5)
    assert 0.2 < float(out["linear"].mean()) < 0.99  # a non-trivial case, neither independent nor identical


def test_jax_cka_of_a_constant_side_is_zero_not_nan():
    x = np.ones((1, 50, 4), np.float32)
    y = np.random.default_rng(1).normal(size=(1, 50, 4)).astype(np.float32)
    out = paired_cka_jax(x, y)
    assert float(out["linear"][0]) == 0.0 and float(out["unbiased"][0]) == 0.0
