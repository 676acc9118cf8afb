"""Timestep sinusoid and RoPE against float64 references written from the official formulas."""

import jax.numpy as jnp
import numpy as np
import pytest

from cos_jax.wan.config import DiTConfig, preset
from cos_jax.wan.rope import apply_rope, rope_tables
from cos_jax.wan.timestep import sinusoid, timestep_table


def official_sinusoid(t, dim):
    half = dim // 2
    angles = np.outer(np.asarray(t, np.float64), np.power(10000.0, -np.arange(half, dtype=np.float64) / half))
    return np.concatenate([np.cos(angles), np.sin(angles)], axis=1)


def test_sinusoid_matches_float64():
    t = np.array([0.0, 1.0, 999.0, 875.0, 437.25, 1000.0, 3.75, 4095.0, 123.5, -17.0], np.float32)
    got = np.asarray(sinusoid(jnp.asarray(t), 256))
    assert np.abs(got - official_sinusoid(t, 256)).max() < 1e-6
    naive = np.concatenate([np.cos(np.outer(t, np.float32(10000) ** (-np.arange(128, dtype=np.float32) / 128)))] * 2, 1)
    assert np.abs(naive[:, :128] - official_sinusoid(t, 256)[:, :128]).max() > 1e-5  # why the care is needed


def test_sinusoid_out_of_range_is_nan():
    assert np.isnan(np.asarray(sinusoid(jnp.asarray([5000.0]), 8))).all()


def test_per_token_table_groups_distinct_values():
    t = jnp.asarray([[0.0, 0.0, 500.0, 500.0], [0.0, 250.0, 250.0, 250.0]])
    table = timestep_table(t, slots=2)
    got = table.select(table.values[..., None])[..., 0]
    np.testing.assert_array_equal(np.asarray(got), np.asarray(t))
    too_many = timestep_table(jnp.asarray([[0.0, 1.0, 2.0]]), slots=2)
    assert np.isnan(np.asarray(too_many.values)).all()


def official_rope(grid, head_dim):
    """The official table: per-axis `rope_params(1024, dim_axis)` with its own exponent denominator."""
    d = head_dim
    axis_dims = [d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6)]
    tables = []
    for n, dim_axis in zip(grid, axis_dims, strict=True):
        freqs = 1.0 / np.power(10000.0, np.arange(0, dim_axis, 2, dtype=np.float64) / dim_axis)
        tables.append(np.exp(1j * np.outer(np.arange(n), freqs)))
    f, h, w = grid
    full = np.concatenate(
        [
            np.broadcast_to(tables[0][:, None, None], (f, h, w, tables[0].shape[1])),
            np.broadcast_to(tables[1][None, :, None], (f, h, w, tables[1].shape[1])),
            np.broadcast_to(tables[2][None, None, :], (f, h, w, tables[2].shape[1])),
        ],
        axis=-1,
    )
    return full.reshape(f * h * w, -1)


def test_rope_split_of_released_models():
    assert preset("t2v_a14b").rope_pairs == (22, 21, 21)
    assert preset("ti2v_5b").rope_pairs == (22, 21, 21)


@pytest.mark.parametrize("head_dim", [128, 24, 20])
def test_rope_matches_complex_float64(head_dim):
    cfg = DiTConfig("t2v", dim=head_dim, ffn_dim=8, num_heads=1, num_layers=1, in_dim=4, out_dim=4)
    grid = (3, 5, 7)
    cos, sin = rope_tables(grid, cfg.rope_pairs, cfg.rope_theta, cfg.rope_max_positions)
    x = np.random.default_rng(0).standard_normal((1, 105, 2, head_dim)).astype(np.float32)
    got = np.asarray(apply_rope(jnp.asarray(x), cos, sin))
    xc = x.astype(np.float64).reshape(1, 105, 2, head_dim // 2, 2)
    rotated = (xc[..., 0] + 1j * xc[..., 1]) * official_rope(grid, head_dim)[None, :, None, :]
    expected = np.stack([rotated.real, rotated.imag], -1).reshape(x.shape)
    assert np.abs(got - expected).max() < 2e-6


def test_rope_rejects_grids_beyond_table():
    with pytest.raises(ValueError, match="at most 1024"):
        rope_tables((2, 2000, 2), (2, 1, 1), 10000.0, 1024)
