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

    mesh, sharded, got, _ = _on_mesh(model, spec, inputs)
    kernel = sharded.blocks.ffn_up.kernel[...]
    assert isinstance(kernel.sharding, NamedSharding)
    assert kernel.sharding.spec == logical_to_spec(("layers", "embed", "mlp"), kernel.shape, mesh)
    assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()


def _on_mesh(model, spec: str, inputs):
    """(mesh, the model placed on it, its forward with the batch split, the forward's jaxpr as text)."""
    mesh = make_mesh(spec)
    sharded = shard_model(model, mesh)
    batch = NamedSharding(mesh, logical_to_spec(("batch",), (2,), mesh))
    with jax.set_mesh(mesh):
        args = [jax.device_put(a, batch) for a in inputs]
        return (
            mesh,
            sharded,
            np.asarray(jax.jit(_forward)(sharded, *args)),
            str(jax.make_jaxpr(_forward)(sharded, *args)),
        )


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


CFG8 = CFG.replace(num_heads=8)  # heads that divide over 2, 4 and 8 devices


@pytest.mark.parametrize(
    "cfg, spec, all_to_all",
    [(CFG8, "context=8", True), (CFG8, "data=2,context=2,tensor=2", True), (CFG8, "fsdp=2,context=4", True),
     (CFG, "context=8", False)],  # 4 heads do not divide over 8: local queries against gathered keys instead
)  # fmt: skip
def test_context_parallel_self_attention_equals_one_device(cfg, spec, all_to_all):
    """The sequence split over `context` (24 tokens over up to 8 devices), weights split over fsdp × context:
    self-attention trades the sequence split for a head split by all-to-all, and the output is the single
    device's to float32 rounding."""
    if len(jax.devices()) < 8:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=8")
    model = init_dit(cfg, seed=5)
    inputs = _inputs()
    expected = np.asarray(jax.jit(_forward)(model, *inputs))
    _, sharded, got, jaxpr = _on_mesh(model, spec, inputs)
    assert "context" in str(sharded.blocks.ffn_up.kernel[...].sharding.spec)  # FSDP over the context group too
    assert ("all_to_all" in jaxpr) == all_to_all
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_context_parallel_attention_sees_only_local_arrays(monkeypatch):
    """Under a context mesh both attentions run per device inside shard_map: fused kernels whose own
    partitioner wants q, k and v split alike (cuDNN's) never see a sequence-split q beside replicated text keys.
    Self-attention gets the whole sequence with a share of the heads (or, where the heads do not divide, a
    share of the queries with every key), cross-attention a share of the queries with every text key; the
    output stays the single device's."""
    if len(jax.devices()) < 8:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=8")
    from cos_jax.wan import attention as attention_module

    model = init_dit(CFG8, seed=5)
    inputs = _inputs()
    expected = np.asarray(jax.jit(_forward)(model, *inputs))
    seen, plain = [], attention_module.attention

    def recording(q, k, v, backend="auto"):
        seen.append((q.shape, k.shape))
        return plain(q, k, v, backend)

    monkeypatch.setattr(attention_module, "attention", recording)
    jax.clear_caches()  # trace anew: other tests may have compiled these forwards already
    _, _, got, _ = _on_mesh(model, "data=2,context=4", inputs)
    # batch 2 over data=2; 24 tokens over context=4; 8 heads; 8 text tokens
    assert set(seen) == {((1, 24, 2, 8), (1, 24, 2, 8)), ((1, 6, 8, 8), (1, 8, 8, 8))}
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()

    # 4 heads do not divide over context=8: self-attention gathers the keys instead of trading for heads
    model = init_dit(CFG, seed=5)
    expected = np.asarray(jax.jit(_forward)(model, *inputs))
    seen.clear()
    jax.clear_caches()
    _, _, got, _ = _on_mesh(model, "context=8", inputs)
    assert set(seen) == {((2, 3, 4, 16), (2, 24, 4, 16)), ((2, 3, 4, 16), (2, 8, 4, 16))}
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_context_parallel_gradients_equal_one_device():
    """The all-to-all attention differentiates (LoRA training on a context mesh): d/dx of a loss matches."""
    if len(jax.devices()) < 8:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=8")
    model = init_dit(CFG8, seed=5)
    x, t, ctx, y = _inputs()
    grad = jax.jit(jax.grad(lambda x, m: (_forward(m, x, t, ctx, y) ** 2).sum()))
    expected = np.asarray(grad(x, model))
    mesh = make_mesh("context=8")
    with jax.set_mesh(mesh):
        got = np.asarray(grad(x, shard_model(model, mesh)))
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
