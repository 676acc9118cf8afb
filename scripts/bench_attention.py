"""Self-attention kernels at the DiT's shape on one GPU, seconds and TFLOP/s per call and the largest
difference from plain cuDNN: cuDNN (jax.nn.dot_product_attention) as is, on keys padded to a multiple of 128
(masked by length), on whole 128-key blocks with the remainder folded in by log-sum-exp (in XLA, or by a
second cuDNN call: what `attention(..., "cudnn")` does), a timing probe on whole blocks only, and the
Pallas Mosaic-GPU flash kernel of Hopper (float16 operands, as it takes them).

    python scripts/bench_attention.py --tokens 32760 --heads 40 --out benchmarks/attention_h200.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
from bench_common import median_seconds

from cos_jax.arrays_io import atomic_write
from cos_jax.wan import attention as attn


def cudnn(q, k, v):
    return jax.nn.dot_product_attention(q, k, v, implementation="cudnn")


def cudnn_padded(q, k, v, multiple: int = 128):
    """cuDNN on sequences padded to a multiple of `multiple`, the padding masked out by sequence lengths."""
    lq, lk = q.shape[1], k.shape[1]
    pad = lambda x, n: jnp.pad(x, ((0, 0), (0, (-n) % multiple), (0, 0), (0, 0)))
    lengths = lambda n: jnp.full((q.shape[0],), n, jnp.int32)
    out = jax.nn.dot_product_attention(pad(q, lq), pad(k, lk), pad(v, lk), query_seq_lengths=lengths(lq),
                                       key_value_seq_lengths=lengths(lk), implementation="cudnn")  # fmt: skip
    return out[:, :lq]


def cudnn_split(q, k, v):
    """cuDNN on the whole 128-key blocks (with its log-sum-exp), the key remainder in XLA, merged by
    `fold_key_remainder`."""

    def with_lse(q, k, v, kv_len):
        remainder = kv_len is not None
        return (attn.xla_attention_with_lse if remainder else attn.cudnn_attention_with_lse)(q, k, v, kv_len)

    return attn.fold_key_remainder(q, k, v, with_lse)


def cudnn_split_two(q, k, v):
    """What ships: `attention(..., "cudnn")`, the remainder also by cuDNN (padded, masked by length)."""
    return attn.attention(q, k, v, "cudnn")


def probe(q_len: int, k_len: int):
    """Timing probe: cuDNN on the first q_len queries and k_len keys (not the same computation)."""
    return lambda q, k, v: jax.nn.dot_product_attention(q[:, :q_len], k[:, :k_len], v[:, :k_len],
                                                        implementation="cudnn")  # fmt: skip


def mgpu(block_q: int, block_kv: int, steps: int, dtype=jnp.float16, barrier: bool = True):
    """The Mosaic-GPU kernel (float16 or bfloat16 operands) on the whole key blocks, the remainder in XLA,
    merged by `fold_key_remainder`."""
    from jax.experimental.pallas.ops.gpu import attention_mgpu as ops

    config = ops.TuningConfig(block_q=block_q, block_kv=block_kv, max_concurrent_steps=steps,
                              use_schedule_barrier=barrier)  # fmt: skip

    def kernel_with_lse(q, k, v, kv_len):
        if kv_len is not None:
            return attn.xla_attention_with_lse(q, k, v, kv_len)
        lq, d = q.shape[1], q.shape[-1]
        scaled = (q.astype(jnp.float32) / d**0.5).astype(dtype)  # the kernel applies no scale
        padded = jnp.pad(scaled, ((0, 0), (0, (-lq) % (2 * block_q)), (0, 0), (0, 0)))
        out, (lse2,) = ops.attention(padded, k.astype(dtype), v.astype(dtype), config, save_residuals=True)
        return out[:, :lq], lse2[:, :, :lq].swapaxes(1, 2) * jnp.log(2.0)  # base-2 [B, N, L] -> natural [B, L, N]

    return lambda q, k, v: attn.fold_key_remainder(q, k, v, kernel_with_lse, block_kv)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=32760)
    p.add_argument("--heads", type=int, default=40)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--mgpu", default="64x128x2", help="Mosaic-GPU configs BLOCK_QxBLOCK_KVxSTEPS[xbf16][xnobarrier],..."
    )
    p.add_argument("--only-mgpu", action="store_true", help="skip the cuDNN variants but the reference call")
    p.add_argument("--out")
    args = p.parse_args()

    shape = (1, args.tokens, args.heads, args.head_dim)
    q, k, v = (jax.random.normal(jax.random.key(i), shape, jnp.bfloat16) for i in range(3))
    flops = 4 * args.tokens**2 * args.heads * args.head_dim
    whole = args.tokens - args.tokens % 128
    candidates = {"cudnn": cudnn, "cudnn_padded_128": cudnn_padded, "cudnn_split128": cudnn_split,
                  "cudnn_split128_two": cudnn_split_two,
                  f"probe_q{args.tokens}_k{whole}": probe(None, whole)}  # fmt: skip
    if args.only_mgpu:
        candidates = {"cudnn": cudnn}
    for spec in filter(None, args.mgpu.split(",")):
        bq, bkv, steps, *flags = spec.split("x")
        dtype = jnp.bfloat16 if "bf16" in flags else jnp.float16
        name = f"mgpu_q{bq}_kv{bkv}_s{steps}" + "".join(f"_{f}" for f in flags)
        candidates[name] = mgpu(int(bq), int(bkv), int(steps), dtype, "nobarrier" not in flags)
    reference = None
    result = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "shape": list(shape), "kernels": {}}
    for name, fn in candidates.items():
        try:
            run = jax.jit(fn)
            seconds = median_seconds(lambda run=run: run(q, k, v), args.repeats)
            out = run(q, k, v).astype(jnp.float32)
        except Exception as e:  # a kernel that does not build here is reported, not fatal
            result["kernels"][name] = {"error": (str(e).splitlines() or [type(e).__name__])[0][:200]}
        else:
            reference = out if reference is None else reference
            diff = None if name.startswith("probe") else float(jnp.abs(out - reference).max())
            result["kernels"][name] = {"seconds": round(seconds, 5), "tflops_per_s": round(flops / seconds / 1e12, 1),
                                       "max_abs_diff_vs_cudnn": diff}  # fmt: skip
        print(name, result["kernels"][name], flush=True)
        if args.out:  # after every kernel, so a run stopped part-way keeps what it measured
            atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1) + "\n"))


if __name__ == "__main__":
    main()
