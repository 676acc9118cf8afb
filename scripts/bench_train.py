"""Training throughput of the toy world: samples/s and achieved TFLOP/s per setting.

    python scripts/bench_train.py --settings 512:none 1024:dots 2048:full --attention auto --out train_bench.jsonl

Each setting is BATCH:REMAT[:UNROLL] (REMAT one of cos_jax.wan.dit.REMAT_POLICIES; UNROLL blocks per
scan iteration). Times jitted `train_step` on random videos (the data never changes the cost) after compilation, and
also the loss forward alone, so the forward/backward split is visible. Rows are appended to --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from functools import partial

import jax
import numpy as np
from flax import nnx

from cos_jax.train.data import prompt_table
from cos_jax.train.flow import TrainConfig, flow_loss, init_state, train_step
from cos_jax.train.run import train_flops_per_sample
from cos_jax.wan.toy import ToySpec, init_toy


def _seconds_per_call(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / repeats


def bench(spec: ToySpec, cfg: TrainConfig, repeats: int, pool: int = 4096) -> dict:
    rng = np.random.default_rng(0)
    table, prompt = prompt_table([f"prompt number {i % 20} " * 12 for i in range(pool)], spec.dit.text_len)
    video = rng.integers(0, 256, (pool, spec.frames, spec.resolution, spec.resolution, 3), np.uint8)
    data, prompts = jax.device_put(({"video": video, "prompt": prompt}, table))
    graphdef, state = init_state(init_toy(spec), cfg)
    step = jax.jit(partial(train_step, graphdef, spec, cfg)).lower(state, data, prompts).compile()
    memory = step.memory_analysis()  # XLA's plan for the compiled step (what remat changes)
    batch = {k: v[: cfg.batch] for k, v in data.items()}
    forward = jax.jit(lambda p, key: flow_loss(nnx.merge(graphdef, p), spec, cfg, batch, prompts, key))
    step_s = _seconds_per_call(lambda s: step(s, data, prompts)[1]["loss"], (state,), repeats)
    fwd_s = _seconds_per_call(forward, (state.params, jax.random.key(0)), repeats)
    flops = train_flops_per_sample(spec) * cfg.batch
    return {
        "device": jax.devices()[0].device_kind, "batch": cfg.batch, "attention": cfg.attention,
        "remat": cfg.remat, "scan_unroll": cfg.scan_unroll, "policy": cfg.policy,
        "step_ms": round(step_s * 1e3, 2), "forward_ms": round(fwd_s * 1e3, 2),
        "step_temp_mb": round(memory.temp_size_in_bytes / 1e6, 1) if memory is not None else None,
        "samples_per_s": round(cfg.batch / step_s, 1), "train_tflops_per_s": round(flops / step_s / 1e12, 2),
    }  # fmt: skip


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", default=["256:none"], help="BATCH:REMAT[:UNROLL] ...")
    p.add_argument("--attention", nargs="+", default=["auto"])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    spec = ToySpec()
    for setting, attention in itertools.product(args.settings, args.attention):
        batch, remat, *unroll = setting.split(":")
        cfg = TrainConfig(
            batch=int(batch), attention=attention, remat=remat, scan_unroll=int(unroll[0]) if unroll else 1
        )
        try:
            row = bench(spec, cfg, args.repeats)
        except jax.errors.JaxRuntimeError as err:  # e.g. out of memory at a large batch: record and go on
            row = {"device": jax.devices()[0].device_kind, "setting": setting, "attention": attention,
                   "error": str(err).splitlines()[0][:200]}  # fmt: skip
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
