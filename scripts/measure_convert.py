"""Measure conversion throughput (MB/s) and peak memory (RSS) on a random multi-shard official checkpoint.

    python scripts/measure_convert.py --dim 1536 --ffn 8960 --heads 12 --layers 10 --dtype bf16

Writes the source into a temporary folder, then converts it in a fresh child process that first imports
everything and warms up, resets the kernel's peak-RSS counter (/proc/self/clear_refs), converts, and
reports the peak RSS above its pre-conversion RSS. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    from cos_jax.convert.synthetic import measure_conversion
    from cos_jax.wan.config import DiTConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=1536)
    p.add_argument("--ffn", type=int, default=8960)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--layers", type=int, default=10)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--shard-mb", type=int, default=256)
    p.add_argument("--batch-mb", type=int, default=64, help="conversion batch size (convert_checkpoint batch_bytes)")
    p.add_argument("--workdir", help="where to write the temporary checkpoints (default: system temp)")
    args = p.parse_args()
    cfg = DiTConfig("t2v", args.dim, args.ffn, args.heads, args.layers, 16, 16)
    r = measure_conversion(cfg, args.dtype, args.shard_mb << 20, args.workdir, args.batch_mb << 20)
    mb = lambda b: f"{b / 1e6:,.1f} MB"
    print(f"config {cfg}")
    print(f"source: {r['tensors']} tensors in {r['shards']} shards, {mb(r['total_bytes'])} fp32; "
          f"largest source tensor {mb(r['largest_tensor_bytes'])}")  # fmt: skip
    print(f"output {r['dtype']}: largest (stacked) parameter {mb(r['largest_output_parameter_bytes'])}")
    print(f"batches of {args.batch_mb} MB")
    print(f"conversion: {r['seconds']:.1f} s = {r['mb_per_s']:,.1f} MB/s (source bytes)")
    print(f"peak RSS above the pre-conversion RSS ({mb(r['baseline_rss'])}): {mb(r['peak_rss_above_baseline'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
