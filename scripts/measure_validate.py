"""Measure peak memory (RSS) and time of `cos-jax validate`, block by block (--stream) vs the whole model.

    python scripts/measure_validate.py --dim 2048 --ffn 8192 --heads 16 --layers 12 \\
        --out benchmarks/validate_memory_cpu.json

Writes a random official fp32 checkpoint (sharded, `cos_jax.convert.synthetic.write_random_official`) into
a temporary folder, then validates it in a fresh child process per mode (`-converted` modes validate against
the source converted to bf16). Each child imports everything, runs a tiny warm-up validation, resets the
kernel's peak-RSS counter (/proc/self/clear_refs), validates, and reports the peak RSS above its
pre-validation RSS. Linux only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys


def main() -> int:
    from cos_jax.convert.synthetic import measure_validation
    from cos_jax.wan.config import DiTConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--ffn", type=int, default=8192)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument(
        "--modes",
        default="stream,whole",
        help="comma-separated: stream, whole, stream-converted, "
        "whole-converted (-converted: against the checkpoint converted to bf16)",
    )
    p.add_argument("--latent", default="2,4,4")
    p.add_argument("--workdir", help="where to write the temporary checkpoints (default: system temp)")
    p.add_argument("--out", help="add the result to this JSON list (e.g. benchmarks/validate_memory_cpu.json)")
    args = p.parse_args()
    cfg = DiTConfig("t2v", args.dim, args.ffn, args.heads, args.layers, 16, 16)
    latent = tuple(int(v) for v in args.latent.split(","))
    r = measure_validation(cfg, args.modes.split(","), latent, args.workdir)
    mb = lambda b: f"{b / 1e6:,.0f} MB"
    print(f"config {cfg}")
    print(f"source: {r['tensors']} tensors, {mb(r['total_bytes'])} fp32; one block {mb(r['block_bytes_fp32'])} fp32")
    for mode, run in r["runs"].items():
        print(f"{mode:>16}: peak RSS above baseline {mb(run['peak_rss_above_baseline'])} "
              f"(baseline {mb(run['baseline_rss'])}), {run['seconds']:.1f} s, output {run['output']:.2e}, "
              f"worst block {run['worst_block']:.2e}")  # fmt: skip
    if args.out:
        record = {
            "date": datetime.date.today().isoformat(),
            "host": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "command": "python scripts/measure_validate.py " + _command_args(sys.argv[1:]),
            "config": {"dim": args.dim, "ffn_dim": args.ffn, "num_heads": args.heads, "num_layers": args.layers},
            **r,
        }
        records = []
        if os.path.exists(args.out):
            with open(args.out) as f:
                records = json.load(f)
        tmp = f"{args.out}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump([*records, record], f, indent=2)
            f.write("\n")
        os.replace(tmp, args.out)
    return 0


def _command_args(argv: list[str]) -> str:
    """The arguments as run, without --workdir (a machine path)."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--workdir="):
            skip = False
            continue
        if a == "--workdir":
            skip = True
            continue
        out.append(a)
    return " ".join(out)


if __name__ == "__main__":
    sys.exit(main())
