"""DiT structure: full-size parameter counts, input validation, precision policies and the hook point."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cos_jax.wan.config import DiTConfig, preset
from cos_jax.wan.dit import abstract_dit, count_params, init_dit
from cos_jax.wan.hooks import identity_hook


@pytest.mark.parametrize(
    ("name", "count"), [("t2v_a14b", 14_288_491_584), ("i2v_a14b", 14_288_901_184), ("ti2v_5b", 4_999_787_712)]
)
def test_full_size_parameter_counts(name, count):
    assert count_params(abstract_dit(preset(name))) == count


def test_full_size_forward_shapes():
    cfg = preset("ti2v_5b")
    model = abstract_dit(cfg, jnp.bfloat16)
    x = jax.ShapeDtypeStruct((1, 31, 44, 80, 48), jnp.float32)
    t = jax.ShapeDtypeStruct((1, 31 * 22 * 40), jnp.float32)
    ctx = jax.ShapeDtypeStruct((1, 512, 4096), jnp.bfloat16)
    out = jax.eval_shape(lambda m, x, t, c: m(x, t, c, policy="bf16"), model, x, t, ctx)
    assert out.shape == (1, 31, 44, 80, 48) and out.dtype == jnp.float32


def test_config_errors():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        DiTConfig("t2v", dim=50, ffn_dim=8, num_heads=3, num_layers=1, in_dim=4, out_dim=4)
    with pytest.raises(KeyError, match="choose one of"):
        preset("t2v_14b")


def _inputs(cfg, batch=2, latent=(2, 4, 6), seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((batch, *latent, cfg.in_dim)), jnp.float32)
    t = jnp.asarray(rng.uniform(0, 1000, batch), jnp.float32)
    ctx = jnp.asarray(rng.standard_normal((batch, 8, cfg.text_dim)), jnp.float32)
    return x, t, ctx


def test_input_errors_name_the_problem(tiny_config):
    model = init_dit(tiny_config)
    x, t, ctx = _inputs(tiny_config)
    with pytest.raises(ValueError, match="17 channels"):
        model(jnp.concatenate([x, x[..., :1]], -1), t, ctx)
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        model(x[:, :, :3], t, ctx)
    with pytest.raises(ValueError, match="per-token timesteps have 5 tokens"):
        model(x, jnp.zeros((2, 5)), ctx)


def test_identity_hook_is_bit_identical(tiny_config):
    model = init_dit(tiny_config)
    x, t, ctx = _inputs(tiny_config)
    plain = jax.jit(lambda m, x, t, c: m(x, t, c))(model, x, t, ctx)
    plan = {"scale": jnp.ones((tiny_config.num_layers,))}
    hooked, state = jax.jit(
        lambda m, x, t, c, p: m.forward_hooked(x, t, c, hook=identity_hook, plan=p, state=jnp.zeros(3))
    )(model, x, t, ctx, plan)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(state), np.zeros(3))
    np.testing.assert_array_equal(np.asarray(hooked), np.asarray(plain))


def test_hook_plan_is_data_and_state_is_threaded(tiny_config):
    """Which layer a hook acts on is array data: one compilation serves every layer choice."""
    model = init_dit(tiny_config)
    x, t, ctx = _inputs(tiny_config)
    traces = []

    def zero_layer(hidden, plan_slice, layer, norms, block_input):
        norms = norms.at[layer].set(jnp.linalg.norm(hidden, axis=-1))
        return hidden * (1 - plan_slice), norms

    @jax.jit
    def run(m, plan):
        traces.append(1)
        return m.forward_hooked(x, t, ctx, hook=zero_layer, plan=plan, state=jnp.zeros((tiny_config.num_layers, 2, 12)))

    plain = model(x, t, ctx)
    outs = []
    for layer in range(tiny_config.num_layers):
        plan = jnp.zeros(tiny_config.num_layers).at[layer].set(1.0)
        out, norms = run(model, plan)
        assert (np.asarray(norms) > 0).all()  # every layer wrote its slot
        outs.append(np.asarray(out))
    assert len(traces) == 1
    assert all(np.abs(o - np.asarray(plain)).max() > 1e-3 for o in outs)
    assert np.abs(outs[0] - outs[1]).max() > 1e-3


def test_bf16_policy_tracks_fp32_and_keeps_fp32_residual(tiny_config):
    model = init_dit(tiny_config)
    x, t, ctx = _inputs(tiny_config)
    ref = np.asarray(model(x, t, ctx, policy="fp32"))
    seen = model.forward_hooked(
        x, t, ctx, policy="bf16", hook=lambda h, p, i, s, _in: (h, h.dtype == jnp.float32), state=False
    )
    out, residual_is_fp32 = seen
    assert out.dtype == jnp.float32 and bool(residual_is_fp32)  # the residual stream stays float32
    rel = np.abs(np.asarray(out) - ref).max() / np.abs(ref).max()
    assert 1e-5 < rel < 3e-2  # bf16-level, not identical


def test_per_token_timesteps_equal_per_sample_when_uniform(tiny_config):
    model = init_dit(tiny_config)
    x, t, ctx = _inputs(tiny_config)
    tokens = 2 * 2 * 3
    per_sample = np.asarray(model(x, t, ctx))
    per_token = np.asarray(model(x, jnp.repeat(t[:, None], tokens, 1), ctx))
    np.testing.assert_allclose(per_token, per_sample, rtol=0, atol=1e-6)
