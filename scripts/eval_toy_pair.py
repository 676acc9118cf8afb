"""Held-out report of the two-expert toy (`toy-a14b`) beside the single toy, on the same samples and seeds.

    python scripts/eval_toy_pair.py --per-task 100 --out benchmarks/toy_a14b/eval.json
    python scripts/eval_toy_pair.py --loras runs/high/lora.safetensors runs/low/lora.safetensors --out r.json

Per entry (test split, difficulty 2 unless `@1`): score and success of each model, and the paired
difference pair − single with a 95 % bootstrap interval (samples resampled together). Both models sample
with the paper's sampler scaled to the toy (50 Euler steps, CFG 5); the pair switches experts at t < 875.
Writes JSON and a markdown table beside it (.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cos_jax.analysis.stats import bootstrap_ci, paired_bootstrap_ci
from cos_jax.arrays_io import atomic_write
from cos_jax.pipelines.toy import load_toy, load_toy_a14b, lora_pair_label
from cos_jax.train.evaluate import add_eval_arguments, entry_label, held_out_samples, sample_label, score_samples

ENTRIES = ["select_next", "tictactoe", "tictactoe_two", "maze@1", "maze", "maze_two@1", "maze_two",
           "majority_colour", "analogy", "permanence", "clock"]  # fmt: skip


def _interval(values) -> list[float]:
    return [round(float(v), 4) for v in bootstrap_ci(values)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loras", nargs=2, default=None, metavar=("HIGH", "LOW"), help="default: the shipped pair")
    p.add_argument("--tasks", nargs="+", default=ENTRIES)
    add_eval_arguments(p)
    args = p.parse_args()
    single, spec = load_toy()
    pair, _ = load_toy_a14b(loras=tuple(args.loras) if args.loras else None)
    labels = list(dict.fromkeys(map(entry_label, args.tasks)))
    samples = held_out_samples(labels, args.per_task, spec, args.start)
    t0 = time.perf_counter()
    results = {
        name: score_samples(model, spec, samples, args.steps, args.guidance, chunk=args.chunk)
        for name, model in (("single", single), ("pair", pair))
    }
    seconds = time.perf_counter() - t0
    label_of = np.array([sample_label(s) for s in samples])
    report = {}
    for t in labels:
        idx = label_of == t
        row = {"n": int(idx.sum())}
        for name, (scores, successes) in results.items():
            row[name] = {"score": _interval(scores[idx]), "success": _interval(successes[idx])}
        for metric, k in (("score", 0), ("success", 1)):
            diff = paired_bootstrap_ci(results["pair"][k][idx], results["single"][k][idx])
            row[f"pair_minus_single_{metric}"] = [round(float(v), 4) for v in diff]
        report[t] = row
    meta = {"per_task": args.per_task, "start": args.start, "steps": args.steps, "guidance": args.guidance,
            "seconds": round(seconds, 1), "loras": lora_pair_label(args.loras)}  # fmt: skip
    out = Path(args.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps({"meta": meta, "entries": report}, indent=1)))
    fmt = lambda v: f"{v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]"
    lines = ["| entry | n | single success | pair success | pair − single success | pair − single score |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for t, r in report.items():
        lines.append(f"| {t} | {r['n']} | {fmt(r['single']['success'])} | {fmt(r['pair']['success'])} | "
                     f"{fmt(r['pair_minus_single_success'])} | {fmt(r['pair_minus_single_score'])} |")  # fmt: skip
    table = "\n".join(lines) + "\n"
    atomic_write(out.with_suffix(".md"), lambda tmp: Path(tmp).write_text(table))
    print(table)


if __name__ == "__main__":
    main()
