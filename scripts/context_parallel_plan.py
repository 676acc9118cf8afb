"""Per-device compiled memory plans of one full-size DiT forward split over 1, 2, 4 and 8 devices, no weights.

The expert, the latent and the text are abstract (`eval_shape`) and placed by the mesh rules on a
`context=N` mesh: the sequence split over the devices (self-attention by all-to-all over heads, see
`wan.attention.context_parallel_attention`) and the weights split over the same devices (FSDP over the
context group). The forward is lowered and compiled for each N and XLA's per-device memory analysis is
printed and written as JSON. Runs on CPU with fake devices (the default below), where attention takes the
chunked XLA path: its [heads/N, 1024, L] logit chunk is part of the temp figure, which a fused GPU kernel
would not hold.

    python scripts/context_parallel_plan.py --preset i2v_a14b --latent 21x90x160 --devices 1 2 4 8 \
        --out benchmarks/context_parallel_plan_cpu.json
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding

from cos_jax.arrays_io import atomic_write
from cos_jax.parallel import logical_to_spec, make_mesh, param_shardings
from cos_jax.wan.config import preset
from cos_jax.wan.dit import (
    RESIDUAL_AXES,
    abstract_dit,
)


def plan_for(devices: int, dit_cfg, latent: tuple[int, int, int], policy: str) -> dict:
    """Compile the forward on a `context=devices` mesh and return its per-device memory analysis (GiB)."""
    mesh = make_mesh(f"context={devices}", jax.devices()[:devices])
    weight_dtype = jnp.bfloat16 if policy == "bf16" else jnp.float32
    model = abstract_dit(dit_cfg, weight_dtype)
    graphdef, state = nnx.split(model)
    shardings = param_shardings(model, mesh)
    place = lambda v, sh: v.replace(jax.ShapeDtypeStruct(v.get_value().shape, v.get_value().dtype, sharding=sh))
    state = jax.tree.map(place, state, shardings, is_leaf=lambda v: isinstance(v, nnx.Variable))
    frames, height, width = latent
    y_dim = dit_cfg.in_dim - dit_cfg.out_dim
    replicated = NamedSharding(mesh, jax.P())
    x = jax.ShapeDtypeStruct((1, frames, height, width, dit_cfg.out_dim), jnp.float32, sharding=replicated)
    y = jax.ShapeDtypeStruct((1, frames, height, width, y_dim), jnp.float32, sharding=replicated) if y_dim else None
    t = jax.ShapeDtypeStruct((1,), jnp.float32, sharding=replicated)
    ctx = jax.ShapeDtypeStruct((1, dit_cfg.text_len, dit_cfg.text_dim), jnp.float32, sharding=replicated)

    def forward(state, x, t, ctx, y):
        return nnx.merge(graphdef, state)(x, t, ctx, y, policy=policy)

    start = time.perf_counter()
    with jax.set_mesh(mesh):
        compiled = jax.jit(forward).lower(state, x, t, ctx, y).compile()
    mem = compiled.memory_analysis()
    gib = lambda n: round(n / 2**30, 2)
    tokens = dit_cfg.tokens(*latent)
    return {
        "devices": devices,
        "residual_spec": str(logical_to_spec(RESIDUAL_AXES, (1, tokens, dit_cfg.dim), mesh)),
        "compile_s": round(time.perf_counter() - start, 1),
        "argument_gib": gib(mem.argument_size_in_bytes),
        "output_gib": gib(mem.output_size_in_bytes),
        "temp_gib": gib(mem.temp_size_in_bytes),
        "peak_estimate_gib": gib(
            mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes + mem.temp_size_in_bytes
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="i2v_a14b")
    p.add_argument("--latent", default="21x90x160", help="F x H x W of the latent (21x90x160 = 720x1280x81)")
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--policy", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--out", help="write the plans as JSON here")
    args = p.parse_args()

    dit_cfg = preset(args.preset)
    latent = tuple(int(v) for v in args.latent.split("x"))
    result = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "preset": args.preset,
              "latent": list(latent), "tokens": dit_cfg.tokens(*latent), "policy": args.policy,
              "plans": []}  # fmt: skip
    for n in args.devices:
        result["plans"].append(plan_for(n, dit_cfg, latent, args.policy))
        print(json.dumps(result["plans"][-1]), flush=True)
    if args.out:
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1) + "\n"))


if __name__ == "__main__":
    main()
