"""The tiny DiT on 8 fake CPU devices under several meshes equals the single-device output."""

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding

from cos_jax.parallel import logical_to_spec, make_mesh, parse_mesh_spec, shard_model
from cos_jax.wan.config import DiTConfig
from cos_jax.wan.dit import init_dit

CFG = DiTConfig("i2v", dim=64, ffn_dim=96, num_heads=4, num_layers=2, in_dim=36, out_dim=16, text_dim=32)


def _inputs(batch=2):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, 3, 4, 8, 16)).astype(np.float32)  # 3 * 2 * 4 = 24 tokens
    y = rng.standard_normal((batch, 3, 4, 8, 20)).astype(np.float32)
    t = np.array([999.0, 310.5][:batch], np.float32)
    ctx = rng.standard_normal((batch, 8, 32)).astype(np.float32)
    return x, t, ctx, y


def _forward(model, x, t, ctx, y):
    return model(x, t, ctx, y)


@pytest.mark.parametrize("spec", ["fsdp=4,tensor=2", "data=2,context=4", "data=2,fsdp=2,tensor=2"])
def test_sharded_forward_matches_single_device(spec):
    if len(jax.devices()) < 8:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=8")
    model = init_dit(CFG, seed=5)
    inputs = _inputs()
    expected = np.asarray(jax.jit(_forward)(model, *inputs))

    mesh = make_mesh(spec)
    sharded = shard_model(model, mesh)
    kernel = sharded.blocks.ffn_up.kernel[...]
    assert isinstance(kernel.sharding, NamedSharding)
    assert kernel.sharding.spec == logical_to_spec(("layers", "embed", "mlp"), kernel.shape, mesh)
    batch = NamedSharding(mesh, logical_to_spec(("batch",), (2,), mesh))
    with jax.set_mesh(mesh):
        args = [jax.device_put(a, batch) for a in inputs]
        got = np.asarray(jax.jit(_forward)(sharded, *args))
    assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()


def test_mesh_spec_parsing_and_errors():
    assert parse_mesh_spec("fsdp=4,tensor=2") == {"data": 1, "fsdp": 4, "context": 1, "tensor": 2}
    with pytest.raises(ValueError, match="bad mesh spec entry 'pipeline=2'"):
        parse_mesh_spec("pipeline=2")
    with pytest.raises(ValueError, match="needs 16 devices"):
        make_mesh("fsdp=16", jax.devices()[:8])


def test_rules_drop_axes_that_do_not_divide():
    mesh = make_mesh("fsdp=4,tensor=2", jax.devices()[:8]) if len(jax.devices()) >= 8 else None
    if mesh is None:
        pytest.skip("needs 8 devices")
    assert logical_to_spec(("embed", "mlp"), (64, 96), mesh) == jax.P("fsdp", "tensor")
    assert logical_to_spec(("embed", "mlp"), (6, 96), mesh) == jax.P(None, "tensor")
    with pytest.raises(KeyError, match="has no rule"):
        logical_to_spec(("nonsense",))
