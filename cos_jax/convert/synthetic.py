"""Random checkpoints in the official sharded layout for any config, written shard by shard (bounded memory),
and `measure_conversion`: conversion throughput and peak RSS in a fresh child process (Linux: /proc)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

from cos_jax.convert.dit_config import official_config_json
from cos_jax.convert.dit_keys import plan_sources, source_shape, target_shapes
from cos_jax.wan.config import DiTConfig

INDEX = "diffusion_pytorch_model.safetensors.index.json"


def write_random_official(folder: str, cfg: DiTConfig, shard_bytes: int = 1 << 30, seed: int = 0) -> dict:
    """Write `config.json`, float32 shards of about `shard_bytes` and the index; returns size statistics."""
    from safetensors.numpy import save_file

    os.makedirs(folder, exist_ok=True)
    shapes = target_shapes(cfg)
    names = [(n, source_shape(rule, shapes[rule.target])) for rule, ns in plan_sources_all(cfg) for n in ns]
    rng = np.random.default_rng(seed)
    shards, current, size = [], [], 0
    for name, shape in names:
        nbytes = 4 * int(np.prod(shape))
        if current and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += nbytes
    shards.append(current)
    weight_map = {}
    for j, shard in enumerate(shards):
        file = f"diffusion_pytorch_model-{j + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: rng.standard_normal(s, np.float32) * 0.02 for n, s in shard}, os.path.join(folder, file))
        weight_map.update({n: file for n, _ in shard})
    largest = max(4 * int(np.prod(s)) for _, s in names)
    total = sum(4 * int(np.prod(s)) for _, s in names)
    with open(os.path.join(folder, INDEX), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(official_config_json(cfg), f)
    return {"tensors": len(names), "shards": len(shards), "total_bytes": total, "largest_tensor_bytes": largest}


def plan_sources_all(cfg: DiTConfig):
    """The plan over exactly the expected official key set."""
    from cos_jax.convert.dit_keys import expected_keys

    return plan_sources(expected_keys(cfg, "official"), cfg, "official")


# Child processes measure their own peak RSS: reset the high-water mark after warm-up, read VmHWM after.
_RSS_PRELUDE = r"""
import json, os, sys, time

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
"""

_CHILD = (
    _RSS_PRELUDE
    + r"""
from cos_jax.convert.convert import convert_checkpoint
from cos_jax.convert.synthetic import write_random_official
from cos_jax.wan.config import DiTConfig


src, out, dtype, tmp, batch = sys.argv[1:6]
warm = os.path.join(tmp, "warm")
write_random_official(warm + "_src", DiTConfig("t2v", 64, 128, 1, 2, 16, 16, text_dim=64))
convert_checkpoint(warm + "_src", warm, dtype=dtype, progress=False)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS:")
t = time.perf_counter()
manifest = convert_checkpoint(src, out, dtype=dtype, progress=False, batch_bytes=int(batch))
seconds = time.perf_counter() - t
print(json.dumps({"baseline_rss": base, "peak_rss": status("VmHWM:"), "seconds": seconds,
                  "bytes_read": manifest["bytes_read"]}))
"""
)


def measure_conversion(cfg, dtype="bf16", shard_bytes=256 << 20, workdir=None, batch_bytes=64 << 20) -> dict:
    """Write a random checkpoint of `cfg`, convert it in a child process, return sizes, MB/s and RSS."""
    from cos_jax.convert.dit_keys import DIT_RULES, is_stacked

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        stats = write_random_official(os.path.join(tmp, "src"), cfg, shard_bytes)
        argv = [os.path.join(tmp, "src"), os.path.join(tmp, "out"), dtype, tmp, str(batch_bytes)]
        proc = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, check=False)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        child = json.loads(proc.stdout.strip().splitlines()[-1])
    itemsize = 2 if dtype == "bf16" else 4
    shapes = target_shapes(cfg)
    stacked = max(itemsize * (cfg.num_layers if is_stacked(r) else 1) * math.prod(shapes[r.target]) for r in DIT_RULES)
    peak = child["peak_rss"] - child["baseline_rss"]
    return {
        **stats,
        "dtype": dtype,
        "largest_output_parameter_bytes": stacked,
        "peak_rss_above_baseline": peak,
        "baseline_rss": child["baseline_rss"],
        "seconds": child["seconds"],
        "mb_per_s": child["bytes_read"] / 1e6 / child["seconds"],
    }


_VALIDATE_CHILD = (
    _RSS_PRELUDE
    + r"""
from cos_jax.convert.synthetic import write_random_official
from cos_jax.convert.validate import validate
from cos_jax.wan.config import DiTConfig


src, converted, mode, tmp, latent = sys.argv[1:6]
converted = converted if mode.endswith("-converted") else None
mode = mode.removesuffix("-converted")
latent = tuple(int(v) for v in latent.split(","))
warm = os.path.join(tmp, "warm_src")
if not os.path.exists(warm):
    write_random_official(warm, DiTConfig("t2v", 64, 128, 1, 2, 16, 16, text_dim=64))
validate(warm, stream=mode == "stream", latent=latent)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS:")
t = time.perf_counter()
(r,) = validate(src, converted, stream=mode == "stream", per_block=True, latent=latent)
seconds = time.perf_counter() - t
blocks = {k: v for k, v in (r.isolated or {}).items() if k.startswith("block")}
print(json.dumps({"baseline_rss": base, "peak_rss": status("VmHWM:"), "seconds": seconds, "output": r.relative,
                  "worst_block": max(blocks.values()) if blocks else max(r.per_block), "layers": r.layers}))
"""
)


def measure_validation(cfg: DiTConfig, modes=("stream", "whole"), latent=(2, 4, 4), workdir=None) -> dict:
    """Write a random official checkpoint of `cfg` (fp32) and validate it in a fresh child process per mode
    ('stream': block by block; 'whole': the whole model on both sides; with '-converted': against the
    checkpoint converted to bf16), each reporting its peak RSS above its RSS just before validating (after
    imports and a tiny warm-up run)."""
    from cos_jax.convert.convert import convert_checkpoint

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        src, out = os.path.join(tmp, "src"), os.path.join(tmp, "out")
        stats = write_random_official(src, cfg, 256 << 20)
        if any(m.endswith("-converted") for m in modes):
            convert_checkpoint(src, out, progress=False)
        runs = {}
        for mode in modes:
            argv = [src, out, mode, tmp, ",".join(map(str, latent))]
            proc = subprocess.run([sys.executable, "-c", _VALIDATE_CHILD, *argv], capture_output=True, text=True,
                                  check=False)  # fmt: skip
            if proc.returncode:
                raise RuntimeError(f"{mode}: {proc.stderr[-3000:]}")
            child = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[mode] = {**child, "peak_rss_above_baseline": child["peak_rss"] - child["baseline_rss"]}
    block_bytes = 4 * sum(math.prod(s) for t, s in target_shapes(cfg).items() if t.startswith("blocks."))
    return {**stats, "block_bytes_fp32": block_bytes, "latent": list(latent), "runs": runs}
