"""Overhead of the denoising scan over bare DiT forwards.

    python scripts/bench_loop.py --preset toy --latent 5x8x8 --worlds 2 --steps 50 --out loop.json

Times (a) one jitted `sample` trajectory (CFG over W worlds, Euler, x̂0 kept at every step) and (b) one
jitted bare DiT forward on the same [2W] batch; reports (a) / (steps × (b)) − 1. Median of --repeats.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
from bench_common import median_seconds

from cos_jax.sampling import Conditions, initial_noise, sample, sampling_preset
from cos_jax.wan.config import preset
from cos_jax.wan.dit import init_dit


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="toy")
    p.add_argument("--latent", default="5x8x8")
    p.add_argument("--worlds", type=int, default=2)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--policy", default="fp32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()

    cfg = preset(args.preset)
    model = init_dit(cfg)
    f, h, w = (int(v) for v in args.latent.split("x"))
    shape = (f, h, w, cfg.out_dim)
    y = jnp.zeros((1, f, h, w, cfg.in_dim - cfg.out_dim)) if cfg.model_type == "i2v" else None
    ctx = jax.random.normal(jax.random.key(0), (1, cfg.text_len, cfg.text_dim))
    cond = Conditions(context=ctx, negative=jnp.zeros_like(ctx), y=y)
    config = sampling_preset("paper").replace(steps=args.steps, boundary=None)
    seeds = list(range(args.worlds))

    trajectory_s = median_seconds(lambda: sample(model, cond, config, shape, seeds=seeds, policy=args.policy),
                                  args.repeats, sync=lambda out: out)  # fmt: skip

    batch = 2 * args.worlds
    x = jnp.concatenate([initial_noise(seeds, shape)] * 2)
    t = jnp.full((batch,), 999.0)
    ctx_b = jnp.broadcast_to(ctx, (batch, *ctx.shape[1:]))
    y_b = None if y is None else jnp.broadcast_to(y, (batch, *y.shape[1:]))
    forward = jax.jit(lambda m, x, t, c, y: m(x, t, c, y, policy=args.policy))
    forward_s = median_seconds(lambda: forward(model, x, t, ctx_b, y_b), args.repeats)

    result = {
        "device": jax.devices()[0].device_kind,
        "preset": args.preset,
        "latent": args.latent,
        "worlds": args.worlds,
        "steps": args.steps,
        "policy": args.policy,
        "trajectory_s": round(trajectory_s, 4),
        "forward_s": round(forward_s, 5),
        "overhead": round(trajectory_s / (args.steps * forward_s) - 1, 4),
    }
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
