"""Compile (and optionally run) a full-size Wan VAE encode/decode and report XLA's memory plan and time.

    python scripts/bench_vae.py --preset wan21 --size 480x832x81 --compile-only
    python scripts/bench_vae.py --preset wan22 --size 704x1280x121 --repeats 2 --out vae.json
    python scripts/bench_vae.py --dtype bf16 --parts decode --profile trace_dir   # where decode's time goes

Weights are random (the memory plan and speed do not depend on their values). `--compile-only` needs no
accelerator memory: it lowers with abstract inputs and prints XLA's plan (arguments, outputs, temporaries).
`--vae-precision tf32` lets float32 convs use TF32 on GPUs (PyTorch's default for convs;
`with_conv_precision`); the default `fp32` keeps them float32. `--profile DIR` traces one call of each part
(DIR/<part>/summary.json, trace_summary.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from bench_common import peak_gib, plan_gib, time_runs
from flax import nnx
from trace_summary import profile_call

from cos_jax.arrays_io import atomic_write
from cos_jax.wan.vae import VAE_PRECISIONS, abstract_vae, init_vae, vae_preset, with_conv_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="wan21", choices=["wan21", "wan22"])
    parser.add_argument("--size", default="480x832x81", help="HxWxFRAMES of the pixel video")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs (the fastest is reported)")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="weights and activations")
    parser.add_argument("--vae-precision", default="fp32", choices=sorted(VAE_PRECISIONS))
    parser.add_argument("--parts", default="decode,encode")
    parser.add_argument("--profile", default=None, help="trace one call of each part; summaries in this folder")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    cfg = vae_preset(args.preset)
    dtype = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[args.dtype]
    h, w, t = (int(v) for v in args.size.split("x"))
    s = cfg.spatial_stride
    latent = jax.ShapeDtypeStruct((args.batch, cfg.latent_frames(t), h // s, w // s, cfg.z_dim), dtype)
    video = jax.ShapeDtypeStruct((args.batch, t, h, w, 3), dtype)
    model = abstract_vae(cfg, dtype) if args.compile_only else init_vae(cfg, param_dtype=dtype)
    model = with_conv_precision(model, args.vae_precision)
    graphdef, state = nnx.split(model)

    def decode(state, z):
        return nnx.merge(graphdef, state).decode(z)

    def encode(state, x):
        return nnx.merge(graphdef, state).encode(x)

    report = {"preset": args.preset, "size": args.size, "batch": args.batch, "device": str(jax.devices()[0]),
              "dtype": args.dtype, "vae_precision": args.vae_precision}  # fmt: skip
    parts = [p for p in (("decode", decode, latent), ("encode", encode, video)) if p[0] in args.parts.split(",")]
    for name, fn, arg in parts:
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(state, arg).compile()
        entry = {"compile_s": round(time.perf_counter() - start, 2)}
        entry.update(plan_gib(compiled))
        if not args.compile_only:
            x = jnp.zeros(arg.shape, arg.dtype)
            call = lambda compiled=compiled, x=x: compiled(state, x)
            times = time_runs(call, max(1, args.repeats), warmup=False)
            entry["seconds"] = round(min(times), 3)
            peak = peak_gib()  # the process's peak so far, compilation's autotuning included
            if peak is not None:
                entry["peak_gib"] = peak
            if args.profile:
                entry["profile_classes"] = profile_call(call, f"{args.profile}/{name}")["classes"]
        report[name] = entry
        print(name, entry, flush=True)
    if args.out:
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2)))


if __name__ == "__main__":
    main()
