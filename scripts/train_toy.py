"""Train the toy world on the procedural tasks (GPU recommended; resumable).

    python scripts/train_toy.py --out runs/toy --steps 20000 --batch 256 --time-budget 540 \
        --tasks select_next tictactoe maze --per-task 12000

Data: generated once from the task suite into memory (a process pool), then sampled on device.
Resumes from OUT/state when present (exact); `--init` starts from a weights .npz instead (e.g. the
checkpoint kept in the repository, optimizer re-warmed). Writes OUT/log.jsonl, OUT/weights.npz,
OUT/summary.json and OUT/curves.png.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import numpy as np

from cos_jax.arrays_io import atomic_write
from cos_jax.train.evaluate import evaluate, held_out_samples
from cos_jax.train.flow import TrainConfig
from cos_jax.train.run import plot_curves, train
from cos_jax.wan.toy import ToySpec


def parse_counts(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in text.split(","))}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--tasks", nargs="+", default=["select_next", "tictactoe", "maze"])
    p.add_argument("--per-task", type=int, default=8000)
    p.add_argument("--counts", default=None, help="per-task sample counts, e.g. maze=16000,select_next=4000")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--attention", default="auto", help="attention backend: auto, cudnn, xla")
    p.add_argument("--remat", default="none", help="per-block rematerialisation: none, dots, full")
    p.add_argument("--scan-unroll", type=int, default=1)
    p.add_argument("--time-budget", type=float, default=None, help="seconds; checkpoint and stop after")
    p.add_argument("--eval-every", type=int, default=2000)
    p.add_argument("--eval-per-task", type=int, default=32)
    p.add_argument(
        "--eval-tasks",
        nargs="+",
        default=None,
        help="TASK[@DIFFICULTY] entries to evaluate (default: the trained tasks, plus maze@1 with maze)",
    )
    p.add_argument("--init", default=None, help="weights .npz to start from")
    p.add_argument("--data-cache", default=None, help=".npz to reuse generated data across runs")
    p.add_argument("--prepare-data", action="store_true", help="only generate the data into --data-cache")
    args = p.parse_args()

    spec = ToySpec()
    cfg = TrainConfig(batch=args.batch, steps=args.steps, lr=args.lr, warmup=args.warmup, attention=args.attention,
                      remat=args.remat, scan_unroll=args.scan_unroll)  # fmt: skip
    counts = parse_counts(args.counts) if args.counts else args.per_task
    if args.counts:
        args.tasks = list(counts)
    cache = Path(args.data_cache) if args.data_cache else None
    if args.prepare_data and cache is None:
        p.error("--prepare-data needs --data-cache PATH to write the data to")
    if cache is not None and cache.exists():
        with np.load(cache) as f:
            data = {k: f[k] for k in f.files}
    else:
        from cos_jax.train.data import task_arrays

        data = task_arrays(args.tasks, counts, spec.resolution, spec.frames, spec.dit.text_len)
        if cache is not None:
            atomic_write(cache, lambda tmp: np.savez(tmp, **data))
    print(f"training data: {len(data['video'])} samples of {args.tasks}")
    if args.prepare_data:
        return
    eval_tasks = args.eval_tasks or args.tasks + (["maze@1"] if "maze" in args.tasks else [])
    samples = held_out_samples(eval_tasks, args.eval_per_task, spec)
    summary = train(spec, cfg, data, args.out, evaluate_fn=partial(evaluate, spec=spec, samples=samples),
                    eval_every=args.eval_every, time_budget_s=args.time_budget, init_weights=args.init)  # fmt: skip
    plot_curves(Path(args.out) / "log.jsonl", Path(args.out) / "curves.png")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
