"""Exploration statistics of a toy world over many held-out puzzles: does x̂0 keep several candidates alive
in early denoising steps before committing (Chain-of-Steps), or commit at once?

    python scripts/explore_toy.py --per-task 16 --out benchmarks/toy_exploration.json

For every sample, the candidate activations of x̂0 at each of the 50 steps (the demo's diagnostics,
`cos_jax.tasks.exploration`), summarised per entry: mean and max breadth, the share of samples with
more than one live candidate at some step, argmax switches, the mean commit and prune steps, and how often the
committed answer is right.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cos_jax.arrays_io import atomic_write
from cos_jax.pipelines.toy import decode_video, generate, load_toy, toy_sampling
from cos_jax.tasks import get_task
from cos_jax.tasks.exploration import explore
from cos_jax.train.evaluate import held_out_samples, sample_label


def summarise(diags: list[dict]) -> dict:
    commits = [d["commit_step"] for d in diags if d["commit_step"] is not None]
    return {
        "n": len(diags),
        "explored": float(np.mean([d["max_breadth"] > 1 for d in diags])),
        "mean_max_breadth": float(np.mean([d["max_breadth"] for d in diags])),
        "switched": float(np.mean([d["switches"] > 0 for d in diags])),
        "mean_commit_step": float(np.mean(commits)) if commits else None,
        "mean_prune_step": float(np.mean([d["prune_step"] for d in diags])),
        "committed_correct": float(np.mean([d["committed_correct"] for d in diags])),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="weights .npz (default: the shipped toy)")
    p.add_argument("--tasks", nargs="+", default=["select_next", "tictactoe", "tictactoe_two", "maze@1", "maze"])
    p.add_argument("--per-task", type=int, default=16)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    model, spec = load_toy(args.weights)
    samples = held_out_samples(args.tasks, args.per_task, spec)
    traj = generate(model, spec, np.stack([s.first_frame for s in samples]), [s.prompt for s in samples],
                    seeds=list(range(len(samples))), config=toy_sampling(args.steps, args.guidance),
                    progress=True)  # fmt: skip
    x0 = decode_video(spec, traj.x0)  # [S, W, T, H, W, 3]
    per_entry: dict[str, list[dict]] = {}
    for w, sample in enumerate(tqdm(samples, desc="diagnostics", unit="sample")):
        diag = explore(get_task(sample.task), list(x0[:, w]), sample.meta)
        per_entry.setdefault(sample_label(sample), []).append(diag | {"activations": None})
    report = {"meta": vars(args), "entries": {k: summarise(v) for k, v in per_entry.items()}}
    out = Path(args.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1)))
    for k, v in report["entries"].items():
        print(k, v)


if __name__ == "__main__":
    main()
