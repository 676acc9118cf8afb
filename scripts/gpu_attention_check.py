"""On a GPU: the bf16 DiT with cuDNN attention against the XLA attention path and the fp32 policy.

    python scripts/gpu_attention_check.py

Tiny random model (4 heads x 128, 2 layers), latent 5x16x16 (320 tokens: two whole 128-key blocks and a
folded remainder). Prints max relative errors: cudnn vs xla (both bf16 policy), bf16-cudnn vs fp32-xla, and
the gradient of one attention call (300 keys) by cuDNN against XLA's in float32.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from cos_jax.wan.attention import attention
from cos_jax.wan.config import DiTConfig
from cos_jax.wan.dit import init_dit


def attention_gradient_difference() -> float:
    """Largest difference of d/d(q, k, v) sum(sin(attention)) between cuDNN (bf16) and XLA (fp32), relative."""
    keys = jax.random.split(jax.random.key(3), 3)
    q, k, v = (jax.random.normal(key, (1, 300, 4, 128), jnp.bfloat16) for key in keys)
    loss = lambda backend: lambda *qkv: jnp.sum(jnp.sin(attention(*qkv, backend).astype(jnp.float32)))
    got = jax.grad(loss("cudnn"), (0, 1, 2))(q, k, v)
    want = jax.grad(loss("xla"), (0, 1, 2))(*(t.astype(jnp.float32) for t in (q, k, v)))
    return max(float(jnp.abs(g - w).max() / jnp.abs(w).max()) for g, w in zip(got, want, strict=True))


def main():
    cfg = DiTConfig("t2v", dim=512, ffn_dim=1024, num_heads=4, num_layers=2, in_dim=16, out_dim=16, text_dim=64)
    model = init_dit(cfg, seed=0)
    key = jax.random.key(0)
    x = jax.random.normal(key, (2, 5, 16, 16, 16))
    t = jnp.array([999.0, 400.0])
    ctx = jax.random.normal(key, (2, 32, 64))

    def run(policy, backend):
        f = jax.jit(lambda m, x, t, c: m(x, t, c, policy=policy, attention_backend=backend))
        return np.asarray(f(model, x, t, ctx)), f.lower(model, x, t, ctx).compile().as_text()

    ref, _ = run("fp32", "xla")
    xla16, _ = run("bf16", "xla")
    cud16, hlo = run("bf16", "cudnn")
    auto16, hlo_auto = run("bf16", "auto")
    scale = np.abs(ref).max()
    out = {
        "device": jax.devices()[0].device_kind,
        "cudnn_in_hlo": "__cudnn$fmha" in hlo,
        "auto_picks_cudnn": "__cudnn$fmha" in hlo_auto,
        "rel_cudnn_vs_xla_bf16": float(np.abs(cud16 - xla16).max() / scale),
        "rel_bf16_cudnn_vs_fp32": float(np.abs(cud16 - ref).max() / scale),
        "rel_bf16_xla_vs_fp32": float(np.abs(xla16 - ref).max() / scale),
        "auto_equals_cudnn": bool(np.array_equal(auto16, cud16)),
        "rel_grad_cudnn_vs_xla": attention_gradient_difference(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
