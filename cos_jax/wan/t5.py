"""The umT5 text encoder of Wan2.2 (encoder only; wan22.md §7) in Flax NNX, blocks run by `lax.scan`.

Pre-norm T5 blocks: x + SelfAttention(RMSNorm(x)) with a per-layer relative-position bias and no 1/√d
scaling, then x + W_o(gelu_tanh(W_gate·h) · W_up·h), then a final RMSNorm. Padded key positions are
masked; the official pipeline then cuts the output to the prompt's true length and zero-pads, which
`encode` does by zeroing the padded rows.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from cos_jax.wan.layers import param
from cos_jax.wan.precision import Policy, get_policy

F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class T5Config:
    vocab_size: int
    dim: int
    head_dim: int
    num_heads: int
    ffn_dim: int
    num_layers: int
    num_buckets: int = 32
    max_distance: int = 128
    eps: float = 1e-6

    def replace(self, **changes) -> T5Config:
        return dataclasses.replace(self, **changes)


UMT5_XXL = T5Config(vocab_size=256384, dim=4096, head_dim=64, num_heads=64, ffn_dim=10240, num_layers=24)
# The toy world's text encoder: the same architecture over the 259 byte tokens of `ByteTokenizer`.
UMT5_TOY = T5Config(vocab_size=259, dim=128, head_dim=32, num_heads=4, ffn_dim=256, num_layers=2)


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
    """Bidirectional T5 buckets [query, key] of (key − query), in float32 arithmetic like the references."""
    rel = np.arange(length)[None, :] - np.arange(length)[:, None]
    half = num_buckets // 2
    buckets = (rel > 0).astype(np.int64) * half
    n = np.abs(rel)
    max_exact = half // 2
    ratio = np.log(np.maximum(n, 1).astype(np.float32) / np.float32(max_exact)) / np.float32(
        math.log(max_distance / max_exact)
    )
    large = max_exact + (ratio * np.float32(half - max_exact)).astype(np.int64)
    return buckets + np.where(n < max_exact, n, np.minimum(large, half - 1))


def _rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
    xf = x.astype(F32)
    normed = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps)
    return normed.astype(scale.dtype) * scale


class T5Block(nnx.Module):
    def __init__(self, cfg: T5Config, *, rngs: nnx.Rngs, param_dtype):
        inner = cfg.num_heads * cfg.head_dim
        p = lambda shape, axes, init="fan_in": param(rngs, shape, axes, init, param_dtype)
        self.norm_attn = p((cfg.dim,), ("embed",), "ones")
        self.q = p((cfg.dim, inner), ("embed", "heads"))
        self.k = p((cfg.dim, inner), ("embed", "heads"))
        self.v = p((cfg.dim, inner), ("embed", "heads"))
        self.o = p((inner, cfg.dim), ("heads", "embed"))
        self.position_bias = p((cfg.num_buckets, cfg.num_heads), (None, None))
        self.norm_ffn = p((cfg.dim,), ("embed",), "ones")
        self.gate = p((cfg.dim, cfg.ffn_dim), ("embed", "mlp"))
        self.up = p((cfg.dim, cfg.ffn_dim), ("embed", "mlp"))
        self.down = p((cfg.ffn_dim, cfg.dim), ("mlp", "embed"))
        self.num_heads, self.head_dim, self.eps = cfg.num_heads, cfg.head_dim, cfg.eps

    def __call__(self, x, buckets, key_mask, dtype):
        b, t, _ = x.shape
        mm = lambda a, w: jnp.dot(a.astype(dtype), w[...].astype(dtype), preferred_element_type=dtype)
        h = _rms_norm(x, self.norm_attn[...].astype(dtype), self.eps)
        heads = lambda y: y.reshape(b, t, self.num_heads, self.head_dim)
        q, k, v = heads(mm(h, self.q)), heads(mm(h, self.k)), heads(mm(h, self.v))
        scores = jnp.einsum("bqnd,bknd->bnqk", q, k, preferred_element_type=F32)
        bias = jnp.take(self.position_bias[...].astype(F32), buckets, axis=0).transpose(2, 0, 1)  # [N, T, T]
        scores = scores + bias[None] + jnp.where(key_mask, 0.0, jnp.finfo(F32).min)[:, None, None, :]
        probs = jax.nn.softmax(scores, axis=-1).astype(dtype)
        attn = jnp.einsum("bnqk,bknd->bqnd", probs, v).reshape(b, t, -1)
        x = x + mm(attn, self.o).astype(x.dtype)
        h = _rms_norm(x, self.norm_ffn[...].astype(dtype), self.eps)
        y = mm(jax.nn.gelu(mm(h, self.gate), approximate=True) * mm(h, self.up), self.down)
        return x + y.astype(x.dtype)


class UMT5Encoder(nnx.Module):
    def __init__(self, cfg: T5Config, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.config = cfg
        self.embedding = param(rngs, (cfg.vocab_size, cfg.dim), ("vocab", "embed"), "rsqrt_last", param_dtype)

        @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def make_blocks(key):
            return T5Block(cfg, rngs=nnx.Rngs(key), param_dtype=param_dtype)

        self.blocks = make_blocks(jax.random.split(rngs.params(), cfg.num_layers))
        self.final_norm = param(None, (cfg.dim,), ("embed",), "ones", param_dtype)

    def __call__(
        self, ids: Int[Array, "B T"], mask: Int[Array, "B T"], *, policy: str | Policy = "fp32"
    ) -> Float[Array, "B T D"]:
        """Hidden states [B, T, dim] (float32); rows past each prompt's length are zero."""
        cfg = self.config
        dtype = get_policy(policy).compute_dtype
        key_mask = mask.astype(bool)
        buckets = jnp.asarray(relative_position_buckets(ids.shape[1], cfg.num_buckets, cfg.max_distance))
        x = jnp.take(self.embedding[...], ids, axis=0).astype(F32 if dtype == F32 else dtype)

        def body(x, block):
            return block(x, buckets, key_mask, dtype), None

        x, _ = jax.lax.scan(body, x, self.blocks)
        out = _rms_norm(x, self.final_norm[...].astype(x.dtype), cfg.eps).astype(F32)
        return out * key_mask[..., None]


def init_umt5(cfg: T5Config, seed: int = 0, param_dtype=jnp.float32) -> UMT5Encoder:
    return UMT5Encoder(cfg, rngs=nnx.Rngs(seed), param_dtype=param_dtype)


def abstract_umt5(cfg: T5Config, param_dtype=jnp.float32) -> UMT5Encoder:
    """The encoder's structure with `ShapeDtypeStruct` leaves (no memory)."""
    return nnx.eval_shape(lambda: init_umt5(cfg, param_dtype=param_dtype))
