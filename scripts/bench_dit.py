"""Benchmark one DiT forward at full size (random bf16 weights) and check the attention kernel in use.

    python scripts/bench_dit.py --preset t2v_a14b --size 480x832x81 --batch 1 --out bench.json

Prints and writes: seconds per forward (median of --repeats after warm-up), achieved TFLOP/s by the
analytic count of wan22.md §9, weight and XLA temporary (activation) memory, compile time, and
whether the compiled program calls the cuDNN fused attention kernel. `--layers N` runs only N blocks (for quick checks).
`--mesh context=2` spreads the forward over devices (sequence split, all-to-all attention, weights FSDP over
the same devices); `--check` also times the forward on one device in the same process (`speedup`) and adds the largest
difference from its output, relative to its max.

    python scripts/bench_dit.py --preset i2v_a14b --size 720x1280x81 --mesh context=2 --check --out multi.jsonl

`--profile DIR` traces one more forward with the JAX profiler and writes DIR/summary.json (device time per
kernel class and the longest ops, see trace_summary.py) and DIR/hlo.txt.gz (the optimised HLO, to look
the ops up in).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_common import append_json_line, config_and_latent, time_runs
from jax.sharding import NamedSharding
from trace_summary import profile_call

from cos_jax.arrays_io import atomic_write
from cos_jax.parallel import make_mesh, shard_model
from cos_jax.wan.dit import init_dit


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="t2v_a14b")
    p.add_argument("--size", default="480x832x81", help="HxWxFRAMES in pixels (VAE stride 4x8x8, or 4x16x16 for ti2v)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--policy", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--attention", default="auto")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mesh", default="", help="spread the forward over devices, e.g. context=2 (sequence split)")
    p.add_argument("--check", action="store_true", help="with --mesh: compare with the one-device output")
    p.add_argument("--out", default=None, help="append the result as one JSON line to this file")
    p.add_argument("--profile", default=None, help="trace one forward; summary and optimised HLO in this folder")
    args = p.parse_args()

    cfg, latent = config_and_latent(args.preset, args.size, args.layers)
    tokens = latent[0] * (latent[1] // 2) * (latent[2] // 2)

    t0 = time.perf_counter()
    model = init_dit(cfg, seed=0, param_dtype=jnp.bfloat16)
    jax.block_until_ready(jax.tree.leaves(model))
    init_s = time.perf_counter() - t0

    key = jax.random.key(1)
    x = jax.random.normal(key, (args.batch, *latent, cfg.in_dim), jnp.float32)
    t = jnp.full((args.batch,), 999.0)
    ctx = jax.random.normal(key, (args.batch, cfg.text_len, cfg.text_dim), jnp.bfloat16)

    fwd = jax.jit(lambda m, x, t, c: m(x, t, c, policy=args.policy, attention_backend=args.attention))
    reference = one_device = None
    if args.mesh and args.check:  # the one-device forward, timed the same way, and its output
        one = fwd.lower(model, x, t, ctx).compile()
        one_device = statistics.median(time_runs(lambda: one(model, x, t, ctx), args.repeats))
        reference = np.asarray(one(model, x, t, ctx), np.float32)
        del one
    mesh = make_mesh(args.mesh) if args.mesh else None
    devices = 1 if mesh is None else mesh.size
    if mesh is not None:
        model = shard_model(model, mesh)
        x, t, ctx = jax.device_put((x, t, ctx), NamedSharding(mesh, jax.P()))
    t0 = time.perf_counter()
    with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
        compiled = fwd.lower(model, x, t, ctx).compile()
    compile_s = time.perf_counter() - t0
    hlo = compiled.as_text()
    uses_cudnn = "__cudnn$fmha" in hlo

    times = time_runs(lambda: compiled(model, x, t, ctx), args.repeats)
    sec = statistics.median(times)
    mem = compiled.memory_analysis()
    weights_gb = sum(v.nbytes for v in jax.tree.leaves(model)) / 1e9
    result = {
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "preset": args.preset,
        "layers": cfg.num_layers,
        "size": args.size,
        "latent": latent,
        "tokens": tokens,
        "batch": args.batch,
        "policy": args.policy,
        "attention": args.attention,
        "uses_cudnn_attention": uses_cudnn,
        "seconds_per_forward": round(sec, 4),
        "all_seconds": [round(s, 4) for s in times],
        "tflops_per_s": round(args.batch * cfg.forward_flops(tokens) / sec / 1e12, 1),  # all devices together
        "tflops_per_s_per_device": round(args.batch * cfg.forward_flops(tokens) / sec / 1e12 / devices, 1),
        "weights_gb": round(weights_gb, 2),
        "activation_temp_gb": round(mem.temp_size_in_bytes / 1e9, 2) if mem else None,
        "compile_s": round(compile_s, 1),
        "init_s": round(init_s, 1),
        "mesh": args.mesh or None,
        "devices": devices,
    }
    if reference is not None:
        out = np.asarray(compiled(model, x, t, ctx), np.float32)
        result["one_device_seconds_per_forward"] = round(one_device, 4)
        result["speedup"] = round(one_device / sec, 3)
        result["max_rel_diff_vs_one_device"] = float(np.abs(out - reference).max() / np.abs(reference).max())
    if args.profile:
        profile = profile_call(lambda: compiled(model, x, t, ctx), args.profile, {"run": result})
        atomic_write(f"{args.profile}/hlo.txt.gz", lambda tmp: Path(tmp).write_bytes(gzip.compress(hlo.encode())))
        print(json.dumps(profile["classes"]))
    print(json.dumps(result))
    append_json_line(args.out, result)


if __name__ == "__main__":
    main()
