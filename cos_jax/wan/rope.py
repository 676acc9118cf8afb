"""3D rotary position embedding of Wan (wan22.md §2.5).

Each head's `head_dim/2` interleaved pairs `(x[2k], x[2k+1])` are split into frame / row / column groups
(22/21/21 at head_dim 128). Pair k of an axis with `n` pairs rotates by `pos * theta^(-2k / (2n))`, where
`pos` is the token's 0-based patch-grid coordinate on that axis. Angles and their cos/sin are computed in
float64 on the host (the grid is static) and stored as small per-axis float32 tables.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def axis_angles(num_positions: int, num_pairs: int, theta: float) -> np.ndarray:
    """float64 angles [positions, pairs] for one axis: p * theta^(-2k/(2*num_pairs))."""
    exponents = np.arange(num_pairs, dtype=np.float64) * 2.0 / (2 * num_pairs)
    return np.outer(np.arange(num_positions, dtype=np.float64), theta**-exponents)


def rope_tables(
    grid: tuple[int, int, int], pairs: tuple[int, int, int], theta: float, max_positions: int
) -> tuple[Float[Array, "L P"], Float[Array, "L P"]]:
    """cos and sin tables [L, head_dim/2] for a (frames, rows, cols) patch grid, token order frame-major."""
    for size, name in zip(grid, ("frames", "rows", "columns"), strict=True):
        if size > max_positions:
            raise ValueError(f"patch grid has {size} {name}; RoPE supports at most {max_positions} positions")
    per_axis = [axis_angles(n, k, theta) for n, k in zip(grid, pairs, strict=True)]
    f, h, w = grid
    cos = [jnp.asarray(np.cos(a), jnp.float32) for a in per_axis]
    sin = [jnp.asarray(np.sin(a), jnp.float32) for a in per_axis]

    def expand(tables):
        tf, th, tw = tables
        full = jnp.concatenate(
            [
                jnp.broadcast_to(tf[:, None, None, :], (f, h, w, tf.shape[-1])),
                jnp.broadcast_to(th[None, :, None, :], (f, h, w, th.shape[-1])),
                jnp.broadcast_to(tw[None, None, :, :], (f, h, w, tw.shape[-1])),
            ],
            axis=-1,
        )
        return full.reshape(f * h * w, -1)

    return expand(cos), expand(sin)


def apply_rope(x: Float[Array, "B L N D"], cos: Float[Array, "L P"], sin: Float[Array, "L P"]) -> jax.Array:
    """Rotate interleaved pairs of x in float32; returns float32 (as the official code does)."""
    xf = x.astype(jnp.float32).reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    x0, x1 = xf[..., 0], xf[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return jnp.stack([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1).reshape(x.shape)
