"""Scaled dot-product attention behind one function, with selectable backends.

Backends:
- `cudnn`: `jax.nn.dot_product_attention(implementation="cudnn")`, a fused flash kernel (NVIDIA, bf16/fp16).
  The kernel is ~8 % faster when the key count is a multiple of 128 (H200, 32,760 keys:
  `scripts/bench_attention.py`), so longer key sets run as whole 128-blocks plus the remainder (padded, masked by
  length), both by cuDNN with their log-sum-exp, merged exactly (`fold_key_remainder`); gradients are those
  of the plain call;
- `xla`: plain XLA attention, materialises the [B, N, Lq, Lk] logits (small shapes, exact fp32 parity);
- `chunked`: XLA attention over query chunks with `lax.map`, so the logits never exceed
  [B, N, chunk, Lk] (large shapes where no fused kernel applies, e.g. CPU);
- `splash`: the Pallas splash-attention kernel of TPUs (sequences padded to its blocks, the padding kept
  apart by segment ids); elsewhere it runs in Pallas' interpret mode (slow; for tests).
`auto` picks splash on TPUs, cuDNN on NVIDIA GPUs for bf16/fp16 inputs, else `xla` for small and `chunked`
for large shapes.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

Backend = Literal["auto", "cudnn", "xla", "chunked", "splash"]
BACKENDS = ("auto", "cudnn", "xla", "chunked", "splash")

# cuDNN's key block: key sets of at least two blocks that are not whole blocks have their remainder folded in.
KEY_BLOCK = 128
# Above this many logits per (batch, head) the XLA path is chunked over queries.
CHUNK_THRESHOLD = 4096 * 4096
QUERY_CHUNK = 1024


def resolve_backend(backend: Backend, dtype, q_len: int, kv_len: int) -> str:
    """The concrete backend `auto` stands for, given the platform, dtype and sequence lengths."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {BACKENDS}")
    if backend != "auto":
        return backend
    if jax.default_backend() == "tpu":
        return "splash"
    if jax.default_backend() == "gpu" and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16):
        return "cudnn"
    return "chunked" if q_len * kv_len > CHUNK_THRESHOLD else "xla"


def attention(
    q: Float[Array, "B Lq N D"],
    k: Float[Array, "B Lk N D"],
    v: Float[Array, "B Lk N D"],
    backend: Backend = "auto",
) -> Float[Array, "B Lq N D"]:
    """Bidirectional softmax attention with scale 1/sqrt(D), no mask. Output has q's dtype."""
    chosen = resolve_backend(backend, q.dtype, q.shape[1], k.shape[1])
    if chosen == "cudnn":
        if q.dtype not in (jnp.bfloat16, jnp.float16):
            raise ValueError(f"the cudnn backend needs bf16/fp16 inputs, got {q.dtype}; use the bf16 policy")
        return _cudnn_attention(q, k, v)
    if chosen == "xla":
        return jax.nn.dot_product_attention(q, k, v, implementation="xla")
    if chosen == "splash":
        return _splash_attention(q, k, v)
    return _chunked_attention(q, k, v, QUERY_CHUNK)


def context_parallel_attention(
    q: Float[Array, "B Lq N D"],
    k: Float[Array, "B Lk N D"],
    v: Float[Array, "B Lk N D"],
    backend: Backend = "auto",
) -> Float[Array, "B Lq N D"]:
    """Attention with the queries' sequence split on the mesh's `context` axis, run per device inside
    `shard_map` (so fused kernels such as cuDNN's, whose own partitioner wants q, k and v split alike, see
    local arrays). Self-attention (as many keys as queries, split alike; DeepSpeed-Ulysses): an all-to-all
    trades the sequence split for a head split, each device attends over the whole sequence with its share
    of heads, and a second all-to-all trades back. Cross-attention (keys of another length, e.g. the text),
    and self-attention whose heads per device do not divide over `context`: each device attends with its
    share of the queries to all the keys (gathered). Without a context axis, or where the sequence does not
    divide over it, plain `attention` (XLA's own partitioning)."""
    from cos_jax.parallel import logical_to_spec

    mesh = jax.sharding.get_abstract_mesh()
    parts = 1 if mesh.empty else mesh.shape.get("context", 1)
    spec = None if parts == 1 else logical_to_spec(("batch", "length", "act_heads", None), q.shape, mesh)
    if spec is None or spec[1] != "context":
        return attention(q, k, v, backend)
    head_parts = 1 if spec[2] is None else int(np.prod([mesh.shape[a] for a in np.atleast_1d(spec[2])]))
    if k.shape[1] != q.shape[1] or (q.shape[2] // head_parts) % parts:  # local queries, every key
        kv_spec = jax.P(spec[0], None, *spec[2:])
        local = lambda q, k, v: attention(q, k, v, backend)
        return jax.shard_map(local, mesh=mesh, in_specs=(spec, kv_spec, kv_spec), out_specs=spec)(q, k, v)

    def local(q, k, v):
        to_heads = lambda t: jax.lax.all_to_all(t, "context", split_axis=2, concat_axis=1, tiled=True)
        out = attention(to_heads(q), to_heads(k), to_heads(v), backend)
        return jax.lax.all_to_all(out, "context", split_axis=1, concat_axis=2, tiled=True)

    return jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec), out_specs=spec)(q, k, v)


def _cudnn_plain(q, k, v):
    return jax.nn.dot_product_attention(q, k, v, implementation="cudnn")


def cudnn_attention_with_lse(q, k, v, kv_len: int | None):
    """cuDNN attention over `kv_len` of k's rows (all if None) and each query's log-sum-exp [B, Lq, N]."""
    from jax._src.cudnn import fused_attention_stablehlo as fused  # the public API returns no statistics

    lengths = {}
    if kv_len is not None:
        full = lambda n: jnp.full((q.shape[0],), n, jnp.int32)
        lengths = dict(q_seqlen=full(q.shape[1]), kv_seqlen=full(kv_len), mask_type=fused.MaskType.PADDING)
    out, stat = fused.dot_product_attention(q, k, v, scale=q.shape[-1] ** -0.5, return_residual=True, **lengths)
    return out, stat.swapaxes(1, 2)


def xla_attention_with_lse(q, k, v, kv_len: int | None):
    """The reference of the `attend_with_lse` contract in XLA: attention over the first `kv_len` keys (all if
    None) in float32, and each query's log-sum-exp [B, Lq, N]."""
    logits = jnp.einsum("bqnd,bknd->bnqk", q, k, preferred_element_type=jnp.float32) / np.sqrt(q.shape[-1])
    if kv_len is not None:
        logits = jnp.where(jnp.arange(k.shape[1]) < kv_len, logits, -jnp.inf)
    out = jnp.einsum("bnqk,bknd->bqnd", jax.nn.softmax(logits, axis=-1), v.astype(jnp.float32))
    return out, jax.nn.logsumexp(logits, axis=-1).swapaxes(1, 2)


def fold_key_remainder(q, k, v, attend_with_lse, block: int = KEY_BLOCK) -> jax.Array:
    """Attention over the whole `block`s of keys and over the remainder (padded to one block, masked by
    length), merged by their log-sum-exps: the same softmax, up to rounding. `attend_with_lse(q, k, v,
    kv_len)` returns (out, lse [B, Lq, N])."""
    lk = k.shape[1]
    whole, rest_len = lk - lk % block, lk % block
    out, lse = attend_with_lse(q, k[:, :whole], v[:, :whole], None)
    if not rest_len:
        return out.astype(q.dtype)
    pad = lambda x: jnp.pad(x[:, whole:], ((0, 0), (0, block - rest_len), (0, 0), (0, 0)))
    rest, lse_rest = attend_with_lse(q, pad(k), pad(v), rest_len)
    total = jnp.logaddexp(lse, lse_rest)[..., None]
    weight, weight_rest = jnp.exp(lse[..., None] - total), jnp.exp(lse_rest[..., None] - total)
    return (out.astype(jnp.float32) * weight + rest.astype(jnp.float32) * weight_rest).astype(q.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def folded_attention(q, k, v, attend_with_lse, plain):
    """`fold_key_remainder` forward; under differentiation the forward and gradients of `plain(q, k, v)`
    (cuDNN's backward ignores the cotangent of its log-sum-exp output)."""
    return fold_key_remainder(q, k, v, attend_with_lse)


def _folded_fwd(q, k, v, attend_with_lse, plain):
    return jax.vjp(plain, q, k, v)


def _folded_bwd(attend_with_lse, plain, vjp, g):
    return vjp(g)


folded_attention.defvjp(_folded_fwd, _folded_bwd)


@functools.cache
def _cudnn_lse_available() -> bool:
    """Whether this JAX's private cuDNN module returns the log-sum-exp (else the plain call is used)."""
    import inspect

    try:
        from jax._src.cudnn import fused_attention_stablehlo as fused
    except ImportError:
        return False
    params = inspect.signature(fused.dot_product_attention).parameters
    return {"return_residual", "q_seqlen", "kv_seqlen", "mask_type"} <= set(params) and hasattr(fused, "MaskType")


def _cudnn_attention(q, k, v):
    lk = k.shape[1]
    if lk % KEY_BLOCK == 0 or lk < 2 * KEY_BLOCK or not _cudnn_lse_available():
        return _cudnn_plain(q, k, v)
    return folded_attention(q, k, v, cudnn_attention_with_lse, _cudnn_plain)


def _chunked_attention(q, k, v, chunk: int):
    b, lq, n, d = q.shape
    num_chunks = -(-lq // chunk)
    pad = num_chunks * chunk - lq
    qp = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0)))
    q_chunks = qp.reshape(b, num_chunks, chunk, n, d).swapaxes(0, 1)
    out = jax.lax.map(lambda qc: jax.nn.dot_product_attention(qc, k, v, implementation="xla"), q_chunks)
    return out.swapaxes(0, 1).reshape(b, num_chunks * chunk, n, d)[:, :lq]


SPLASH_BLOCK = 512  # query and key/value block of the splash kernel (shorter sequences use one 128-multiple)


def _splash_attention(q, k, v):
    """Splash attention over [B, L, N, D]: q scaled by 1/sqrt(D), both sequences padded to the kernel's
    block, padded rows and columns in segment 1 so real queries never see padded keys."""
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as masks

    _, lq, n, d = q.shape
    lk = k.shape[1]
    block = min(SPLASH_BLOCK, -(-max(lq, lk) // 128) * 128)
    pq, pk = -(-lq // block) * block, -(-lk // block) * block
    pad = lambda t, to: jnp.pad(t, ((0, 0), (0, to - t.shape[1]), (0, 0), (0, 0))).transpose(0, 2, 1, 3)
    segments = lambda real, to: jnp.asarray(np.arange(to) >= real, jnp.int32)
    mask = masks.MultiHeadMask([masks.FullMask((pq, pk)) for _ in range(n)])
    sizes = splash.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block)
    kernel = splash.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1,
                                    interpret=jax.default_backend() != "tpu")  # fmt: skip
    ids = splash.SegmentIds(q=segments(lq, pq), kv=segments(lk, pk))
    scaled = (q.astype(jnp.float32) / np.sqrt(d)).astype(q.dtype)
    out = jax.vmap(lambda q, k, v: kernel(q, k, v, segment_ids=ids))(pad(scaled, pq), pad(k, pk), pad(v, pk))
    return out.transpose(0, 2, 1, 3)[:, :lq].astype(q.dtype)
