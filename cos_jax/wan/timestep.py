"""Sinusoidal timestep features and the per-token timestep table.

The official code builds `cat([cos(t*f), sin(t*f)])` with f_k = 10000^(-k/half) in float64 and then casts
to float32. A plain float32 product `t*f` at t≈1000 is off by ~6e-5 rad, which shows up at the 1e-5 level
in the model output. `sinusoid` instead splits t = n + r (n an integer, |r| <= 1/2) and composes exact
float64-rounded rotations for each set bit of n with a direct rotation by r*f, so every entry is within a
few float32 ulps of the float64 value, in float32 arithmetic only.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

MAX_TIMESTEP_BITS = 12  # |t| < 4096


def _frequencies(half: int) -> np.ndarray:
    return np.power(10000.0, -np.arange(half, dtype=np.float64) / half)


def sinusoid(t: Float[Array, "*shape"], dim: int) -> Float[Array, "*shape dim"]:
    """float32 features `[cos(t*f), sin(t*f)]` (cos first), accurate to float64 rounding; needs |t| < 4096."""
    half = dim // 2
    freqs = _frequencies(half)
    bit_angles = np.outer(2.0 ** np.arange(MAX_TIMESTEP_BITS), freqs)
    bit_cos = jnp.asarray(np.cos(bit_angles), jnp.float32)
    bit_sin = jnp.asarray(np.sin(bit_angles), jnp.float32)

    t = jnp.asarray(t, jnp.float32)
    magnitude = jnp.abs(t)
    whole = jnp.round(magnitude)
    frac = (magnitude - whole)[..., None]  # exact in float32
    n = whole.astype(jnp.int32)[..., None]
    cos = jnp.cos(frac * jnp.asarray(freqs, jnp.float32))
    sin = jnp.sin(frac * jnp.asarray(freqs, jnp.float32))
    for j in range(MAX_TIMESTEP_BITS):
        set_bit = ((n >> j) & 1) == 1
        c, s = bit_cos[j], bit_sin[j]
        cos, sin = jnp.where(set_bit, cos * c - sin * s, cos), jnp.where(set_bit, sin * c + cos * s, sin)
    sin = jnp.where(t[..., None] < 0, -sin, sin)
    out = jnp.concatenate([cos, sin], axis=-1)
    return jnp.where(magnitude[..., None] < 2.0**MAX_TIMESTEP_BITS, out, jnp.nan)


class TimestepTable(NamedTuple):
    """Distinct timesteps per sample (`values` [B, K]) and, for per-token input, each token's slot [B, L]."""

    values: Float[Array, "B K"]
    index: Int[Array, "B L"] | None

    def select(self, table: Float[Array, "B K ..."]) -> Float[Array, "B L_or_1 ..."]:
        """Per-token rows of a [B, K, ...] table: [B, L, ...], or [B, 1, ...] when timesteps are per sample."""
        if self.index is None:
            return table
        idx = self.index.reshape(self.index.shape + (1,) * (table.ndim - 2))
        return jnp.take_along_axis(table, idx, axis=1)


def timestep_table(timesteps: Float[Array, " B"] | Float[Array, "B L"], slots: int) -> TimestepTable:
    """Group timesteps so the time MLP runs once per distinct value, not once per token.

    `timesteps` is [B] (one per sample) or [B, L] (one per token, as TI2V-5B uses). Per-token input may hold
    at most `slots` distinct values per sample (TI2V: 2, namely 0 and t); more poisons the result with NaN.
    """
    timesteps = jnp.asarray(timesteps, jnp.float32)
    if timesteps.ndim == 1:
        return TimestepTable(timesteps[:, None], None)
    if timesteps.ndim != 2:
        raise ValueError(f"timesteps must be [B] or [B, L], got shape {timesteps.shape}")

    def unique_row(row):
        values, index = jnp.unique(row, size=slots, fill_value=row[0], return_inverse=True)
        return values, index.reshape(row.shape)

    values, index = jax.vmap(unique_row)(timesteps)
    exact = jnp.all(jnp.take_along_axis(values, index, axis=1) == timesteps, axis=1, keepdims=True)
    return TimestepTable(jnp.where(exact, values, jnp.nan), index)
