"""Attention backends: selection rules and agreement of the XLA paths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cos_jax.wan import attention as attn


def _qkv(lq, lk, dtype=jnp.float32):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    return (jax.random.normal(k1, (2, lq, 3, 16), dtype), jax.random.normal(k2, (2, lk, 3, 16), dtype),
            jax.random.normal(k3, (2, lk, 3, 16), dtype))  # fmt: skip


def test_chunked_equals_xla(monkeypatch):
    q, k, v = _qkv(2500, 700)
    monkeypatch.setattr(attn, "QUERY_CHUNK", 1024)  # 3 chunks, the last one padded
    full = attn.attention(q, k, v, "xla")
    chunked = attn.attention(q, k, v, "chunked")
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(full), atol=1e-6, rtol=1e-6)


def test_reference_softmax():
    q, k, v = _qkv(5, 7)
    logits = jnp.einsum("bqnd,bknd->bnqk", q, k) / 4.0
    expected = jnp.einsum("bnqk,bknd->bqnd", jax.nn.softmax(logits, -1), v)
    np.testing.assert_allclose(np.asarray(attn.attention(q, k, v, "xla")), np.asarray(expected), atol=1e-6)


def test_auto_selection_on_cpu():
    assert attn.resolve_backend("auto", jnp.float32, 100, 100) == "xla"
    assert attn.resolve_backend("auto", jnp.bfloat16, 32760, 32760) == "chunked"
    assert attn.resolve_backend("xla", jnp.float32, 32760, 32760) == "xla"


def test_bad_backend_and_dtype_errors():
    q, k, v = _qkv(4, 4)
    with pytest.raises(ValueError, match="unknown attention backend"):
        attn.attention(q, k, v, "flash")
    with pytest.raises(ValueError, match="bf16/fp16"):
        attn.attention(q, k, v, "cudnn")


@pytest.mark.parametrize("lq, lk, d", [(200, 200, 64), (300, 72, 128)])  # self (padded) and cross attention
def test_splash_in_interpret_mode_equals_xla(lq, lk, d, monkeypatch):
    """The TPU splash kernel run by Pallas' interpreter on CPU: padding to its block (kept apart by segment
    ids) and the 1/sqrt(D) scale give XLA's attention."""
    monkeypatch.setattr(attn, "SPLASH_BLOCK", 128)  # several blocks at a test's size
    keys = jax.random.split(jax.random.key(1), 3)
    q = jax.random.normal(keys[0], (2, lq, 2, d))
    k, v = (jax.random.normal(key, (2, lk, 2, d)) for key in keys[1:])
    np.testing.assert_allclose(np.asarray(attn.attention(q, k, v, "splash")),
                               np.asarray(attn.attention(q, k, v, "xla")), atol=2e-6, rtol=2e-5)  # fmt: skip


def test_auto_picks_splash_on_tpu(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert attn.resolve_backend("auto", jnp.bfloat16, 32760, 32760) == "splash"


def test_folded_key_remainder_equals_attention_and_its_gradient():
    """Whole 128-key blocks plus the remainder (padded, masked by length) merged by log-sum-exp give the
    same softmax; gradients are those of the plain call."""
    keys = jax.random.split(jax.random.key(2), 3)
    q = jax.random.normal(keys[0], (2, 90, 3, 64))
    k, v = (jax.random.normal(key, (2, 300, 3, 64)) for key in keys[1:])
    plain = lambda q, k, v: attn.attention(q, k, v, "xla")
    folded = lambda q, k, v: attn.folded_attention(q, k, v, attn.xla_attention_with_lse, plain)
    np.testing.assert_allclose(np.asarray(folded(q, k, v)), np.asarray(plain(q, k, v)), atol=2e-6, rtol=2e-5)
    whole = attn.fold_key_remainder(q, k[:, :256], v[:, :256], attn.xla_attention_with_lse)  # no remainder
    np.testing.assert_allclose(np.asarray(whole), np.asarray(plain(q, k[:, :256], v[:, :256])), atol=2e-6, rtol=2e-5)
    loss = lambda f: lambda q, k, v: jnp.sum(jnp.sin(f(q, k, v)))
    grads, expected = jax.grad(loss(folded), (0, 1, 2))(q, k, v), jax.grad(loss(plain), (0, 1, 2))(q, k, v)
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
