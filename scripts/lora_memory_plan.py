"""The compiled memory plan of one LoRA training step of a full-size DiT expert, without weights.

The frozen expert, the LoRA, its AdamW state and a batch of clean latents are abstract (`eval_shape`);
the step (flow-matching loss on a σ range, gradients of the LoRA factors only, optimizer update) is
lowered and compiled for the default device, and XLA's memory analysis is printed and written as JSON.

    python scripts/lora_memory_plan.py --preset i2v_a14b --latent 21x60x104 --rank 32 --remat full \
        --out benchmarks/lora_memory_plan_h200.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from cos_jax.train.flow import TrainConfig, velocity_loss
from cos_jax.train.lora import LoraTrainConfig, make_lora_optimizer, u_range
from cos_jax.wan.config import preset
from cos_jax.wan.dit import abstract_dit
from cos_jax.wan.lora import LoraConfig, init_lora


def lora_step(graphdef, cfg: LoraTrainConfig, scale: float, bounds, params, lora, opt_state, batch, key):
    """One LoRA step on clean latents: loss, LoRA gradients, AdamW update."""
    dit = nnx.merge(graphdef, params)
    k_sigma, k_eps = jax.random.split(key)

    def loss_of(lora):
        return velocity_loss(dit, cfg.train, batch["x0"], batch["y"], batch["context"], k_sigma, k_eps, u_range=bounds,
                             lora=lora, lora_scale=scale)  # fmt: skip

    loss, grads = jax.value_and_grad(loss_of)(lora)
    updates, opt_state = make_lora_optimizer(cfg).update(grads, opt_state, lora)
    return optax.apply_updates(lora, updates), opt_state, loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="i2v_a14b")
    p.add_argument("--latent", default="21x60x104", help="F x H x W of the latent (21x60x104 = 480x832x81)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--remat", default="full", choices=["none", "dots", "full"])
    p.add_argument("--policy", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--sigma", default="0.9,1", help="σ range of the expert (high noise: 0.9,1)")
    p.add_argument("--out", help="write the plan as JSON here")
    args = p.parse_args()

    dit_cfg = preset(args.preset)
    frames, height, width = (int(v) for v in args.latent.split("x"))
    train = TrainConfig(batch=args.batch, policy=args.policy, remat=args.remat)
    lora_cfg = LoraConfig(rank=args.rank)
    cfg = LoraTrainConfig(train, lora_cfg)
    bounds = u_range(tuple(float(v) for v in args.sigma.split(",")), train.shift)
    weight_dtype = jnp.bfloat16 if args.policy == "bf16" else jnp.float32
    graphdef, params = nnx.split(abstract_dit(dit_cfg, weight_dtype), nnx.Param)
    lora = jax.eval_shape(lambda: init_lora(dit_cfg, lora_cfg, jax.random.key(0)))
    opt_state = jax.eval_shape(make_lora_optimizer(cfg).init, lora)
    b, y_dim = args.batch, dit_cfg.in_dim - dit_cfg.out_dim
    batch = {
        "x0": jax.ShapeDtypeStruct((b, frames, height, width, dit_cfg.out_dim), jnp.float32),
        "y": jax.ShapeDtypeStruct((b, frames, height, width, y_dim), jnp.float32) if y_dim else None,
        "context": jax.ShapeDtypeStruct((b, dit_cfg.text_len, dit_cfg.text_dim), jnp.float32),
    }
    key = jax.eval_shape(lambda: jax.random.key(0))
    step = jax.jit(partial(lora_step, graphdef, cfg, lora_cfg.scale, bounds), donate_argnums=(1, 2))
    start = time.perf_counter()
    compiled = step.lower(params, lora, opt_state, batch, key).compile()
    seconds = time.perf_counter() - start
    mem = compiled.memory_analysis()
    gib = lambda n: round(n / 2**30, 2)
    count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
    plan = {
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "preset": args.preset,
        "latent": [frames, height, width],
        "tokens": (frames // dit_cfg.patch_size[0])
        * (height // dit_cfg.patch_size[1])
        * (width // dit_cfg.patch_size[2]),
        "batch": b,
        "rank": args.rank,
        "remat": args.remat,
        "policy": args.policy,
        "base_parameters": count(params),
        "lora_parameters": count(lora),
        "compile_s": round(seconds, 1),
        "argument_gib": gib(mem.argument_size_in_bytes),
        "output_gib": gib(mem.output_size_in_bytes),
        "alias_gib": gib(mem.alias_size_in_bytes),
        "temp_gib": gib(mem.temp_size_in_bytes),
        "peak_estimate_gib": gib(
            mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes + mem.temp_size_in_bytes
        ),
    }
    print(json.dumps(plan, indent=1))
    if args.out:
        tmp = f"{args.out}.tmp"
        with open(tmp, "w") as f:
            json.dump(plan, f, indent=1)
            f.write("\n")
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
