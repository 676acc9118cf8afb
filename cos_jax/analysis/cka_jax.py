"""CKA in JAX, batched and jit-able, for comparing paired representations inside a compiled program.

The same estimators as `cos_jax.analysis.cka` (the float64 numpy reference they are tested against):
linear CKA over centred features, and CKA from the unbiased HSIC estimator (Song et al. 2012) with linear
kernels, both in feature space (no n × n matrices), so 32k tokens × 5120 channels fit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST


def _gram_norm2(x, y):
    """||xᵀy||_F² over the leading batch axes; x [..., n, p], y [..., n, q]."""
    cross = jnp.einsum("...np,...nq->...pq", x, y, precision=HIGHEST)
    return jnp.sum(jnp.square(cross), axis=(-2, -1))


def linear_cka(x, y):
    """Linear CKA of x [..., n, p] and y [..., n, q] (tokens as rows); 0 where a side has no variance."""
    x = x - jnp.mean(x, axis=-2, keepdims=True)
    y = y - jnp.mean(y, axis=-2, keepdims=True)
    xy, xx, yy = _gram_norm2(x, y), _gram_norm2(x, x), _gram_norm2(y, y)
    den = jnp.sqrt(xx * yy)
    return jnp.where(den > 0, xy / jnp.where(den > 0, den, 1.0), 0.0)


def hsic_unbiased(x, y):
    """The unbiased HSIC estimator with linear kernels K = xxᵀ, L = yyᵀ (n >= 4), in feature space."""
    n = x.shape[-2]
    x = x - jnp.mean(x, axis=-2, keepdims=True)  # improves float32 accuracy; the estimator is shift-invariant
    y = y - jnp.mean(y, axis=-2, keepdims=True)
    nx, ny = jnp.sum(x * x, -1), jnp.sum(y * y, -1)  # K_ii, L_ii
    trace = _gram_norm2(x, y) - jnp.sum(nx * ny, -1)  # tr(K̃L̃)
    sx, sy = jnp.sum(x, -2), jnp.sum(y, -2)
    ones_k = jnp.sum(sx * sx, -1) - jnp.sum(nx, -1)  # 1ᵀK̃1
    ones_l = jnp.sum(sy * sy, -1) - jnp.sum(ny, -1)
    kx = jnp.einsum("...np,...p->...n", x, sx, precision=HIGHEST) - nx  # K̃1
    ly = jnp.einsum("...nq,...q->...n", y, sy, precision=HIGHEST) - ny
    cross = jnp.sum(kx * ly, -1)
    return (trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross) / (n * (n - 3))


def unbiased_cka(x, y):
    """CKA from unbiased HSIC; 0 where the self-HSIC terms are not positive."""
    xy, xx, yy = hsic_unbiased(x, y), hsic_unbiased(x, x), hsic_unbiased(y, y)
    ok = (xx > 0) & (yy > 0)
    return jnp.where(ok, xy / jnp.sqrt(jnp.where(ok, xx * yy, 1.0)), 0.0)


def paired_cka_jax(x, y) -> dict:
    """{"linear", "unbiased"} CKA of each pair x[..., n, p] / y[..., n, q], computed in float32."""
    x, y = x.astype(jnp.float32), y.astype(jnp.float32)
    return {"linear": linear_cka(x, y), "unbiased": unbiased_cka(x, y)}
