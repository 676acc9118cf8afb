"""A whole CFG trajectory over both experts (random bf16 weights), on one device or spread over a mesh.

    python scripts/bench_trajectory.py --preset i2v_a14b --size 720x1280x81 --steps 50 --out traj.jsonl
    python scripts/bench_trajectory.py --preset i2v_a14b --size 720x1280x81 --mesh context=2 --out traj.jsonl

The paper's sampler (Euler, shift 5, CFG 5, the low-noise expert once t < 875) from one world's noise; with
`--mesh` the sequence is split over `context` (all-to-all attention) and both experts' weights are FSDP-split
over the same devices. One run: seconds per step come from the host's record of when each step
finished (steps 1 to the last, so compiling, before step 0, is left out), beside the whole wall time
with compiling, and the largest per-device peak memory (the weights are placed on the mesh first).
`--check` then runs the same trajectory on one device (timed the same way; its peak is the process's)
and compares the final latents.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from bench_common import append_json_line, config_and_latent, peak_gib

from cos_jax.parallel import make_mesh, shard_model
from cos_jax.sampling import Conditions, sample, sampling_preset
from cos_jax.wan.dit import init_dit


def timed_trajectory(run) -> tuple[object, dict]:
    """Run once; the trajectory and its timing: wall seconds (compiling included), seconds per step after
    step 0 (median and mean of the steps' durations)."""
    start = time.perf_counter()
    traj = run()
    wall = time.perf_counter() - start
    done = np.asarray(traj.meta["step_done_s"])
    durations = np.diff(done)
    timing = {"wall_s_with_compile": round(wall, 2), "step0_done_s": round(float(done[0]), 2)}
    if durations.size:
        timing |= {"seconds_per_step": round(float(np.median(durations)), 3),
                   "mean_seconds_per_step": round(float(durations.mean()), 3)}  # fmt: skip
    return traj, timing


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="i2v_a14b")
    p.add_argument("--size", default="720x1280x81", help="H x W x FRAMES of the video")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--layers", type=int, default=None, help="only N blocks per expert (quick checks)")
    p.add_argument("--mesh", default="", help="e.g. context=2; default one device")
    p.add_argument("--check", action="store_true", help="with --mesh: run and time it on one device too, compare")
    p.add_argument("--out", help="append the result as one JSON line to this file")
    args = p.parse_args()

    cfg, latent = config_and_latent(args.preset, args.size, args.layers)
    experts = (init_dit(cfg, seed=0, param_dtype=jnp.bfloat16), init_dit(cfg, seed=1, param_dtype=jnp.bfloat16))
    rng = np.random.default_rng(0)
    ctx = jnp.asarray(rng.standard_normal((1, cfg.text_len, cfg.text_dim)), jnp.float32)
    y_dim = cfg.in_dim - cfg.out_dim
    y = jnp.asarray(rng.standard_normal((1, *latent, y_dim)), jnp.float32) if y_dim else None
    cond = Conditions(context=ctx, negative=jnp.zeros_like(ctx), y=y)
    config = sampling_preset("paper").replace(steps=args.steps)
    mesh = make_mesh(args.mesh) if args.mesh else None

    if mesh is not None:  # the weights live only on the mesh, so its peaks are its own
        experts = tuple(shard_model(e, mesh) for e in experts)

    def trajectory(mesh):
        return sample(experts, cond, config, (*latent, cfg.out_dim), seeds=[0], keep_steps=[], policy="bf16",
                      mesh=mesh, progress=True)  # fmt: skip

    result = {"device": jax.devices()[0].device_kind, "jax": jax.__version__,
              "devices": 1 if mesh is None else mesh.size, "mesh": args.mesh or None, "preset": args.preset,
              "layers": cfg.num_layers, "size": args.size, "tokens": cfg.tokens(*latent), "steps": args.steps,
              "switch_step": config.switch_step()}  # fmt: skip
    traj, timing = timed_trajectory(lambda: trajectory(mesh))
    result |= timing | {"peak_gib_per_device": peak_gib()}
    print(json.dumps(result), flush=True)
    if mesh is not None and args.check:  # after the mesh run, so its peak is its own (JAX cannot reset peaks)
        experts = tuple(jax.device_put(e, jax.devices()[0]) for e in experts)
        one, one_timing = timed_trajectory(lambda: trajectory(None))
        result["one_device"] = one_timing | {"peak_gib": peak_gib()}
        result["speedup_per_step"] = round(one_timing["seconds_per_step"] / timing["seconds_per_step"], 3)
        ref = one.latent
        result["final_latent_max_rel_diff"] = float(np.abs(traj.latent - ref).max() / np.abs(ref).max())
    print(json.dumps(result))
    append_json_line(args.out, result)


if __name__ == "__main__":
    main()
