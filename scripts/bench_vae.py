"""Compile (and optionally run) a full-size Wan VAE encode/decode and report XLA's memory plan and time.

    python scripts/bench_vae.py --preset wan21 --size 480x832x81 --compile-only
    python scripts/bench_vae.py --preset wan22 --size 704x1280x121 --repeats 2 --out vae.json

Weights are random (the memory plan and speed do not depend on their values). `--compile-only` needs no
accelerator memory: it lowers with abstract inputs and prints XLA's plan (arguments, outputs, temporaries).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
from flax import nnx

from cos_jax.wan.vae import abstract_vae, init_vae, vae_preset


def _gib(n: int) -> float:
    return round(n / 2**30, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="wan21", choices=["wan21", "wan22"])
    parser.add_argument("--size", default="480x832x81", help="HxWxFRAMES of the pixel video")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs (the fastest is reported)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    cfg = vae_preset(args.preset)
    h, w, t = (int(v) for v in args.size.split("x"))
    s = cfg.spatial_stride
    latent = jax.ShapeDtypeStruct((args.batch, cfg.latent_frames(t), h // s, w // s, cfg.z_dim), jnp.float32)
    video = jax.ShapeDtypeStruct((args.batch, t, h, w, 3), jnp.float32)
    model = abstract_vae(cfg) if args.compile_only else init_vae(cfg)
    graphdef, state = nnx.split(model)

    def decode(state, z):
        return nnx.merge(graphdef, state).decode(z)

    def encode(state, x):
        return nnx.merge(graphdef, state).encode(x)

    report = {"preset": args.preset, "size": args.size, "batch": args.batch, "device": str(jax.devices()[0])}
    for name, fn, arg in (("decode", decode, latent), ("encode", encode, video)):
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(state, arg).compile()
        entry = {"compile_s": round(time.perf_counter() - start, 2)}
        mem = compiled.memory_analysis()
        if mem is not None:
            entry.update(
                argument_gib=_gib(mem.argument_size_in_bytes),
                output_gib=_gib(mem.output_size_in_bytes),
                temp_gib=_gib(mem.temp_size_in_bytes),
            )
        if not args.compile_only:
            x = jnp.zeros(arg.shape, arg.dtype)
            times = []
            for _ in range(max(1, args.repeats)):
                start = time.perf_counter()
                jax.block_until_ready(compiled(state, x))
                times.append(time.perf_counter() - start)
            entry["seconds"] = round(min(times), 3)
            stats = jax.devices()[0].memory_stats() or {}
            if "peak_bytes_in_use" in stats:
                entry["peak_gib"] = _gib(stats["peak_bytes_in_use"])
        report[name] = entry
        print(name, entry, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
