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
