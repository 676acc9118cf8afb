"""Held-out report of a toy world: score and success per task beside the calibration baselines.

    python scripts/eval_toy.py --per-task 100 --out benchmarks/toy_eval.json   # the shipped EMA
    python scripts/eval_toy.py --weights runs/toy/weights.npz --tasks maze select_next --per-task 32 --out r.json

Samples come from the test split (parameter hashes never seen in training), difficulty 2 unless an entry
says otherwise (`maze@1`: the 4x4 mazes; the default list adds it to every task at level 2), the paper
sampler scaled to the toy (50 Euler steps, CFG 5). Baselines on the same samples: the ground-truth video,
a still video (first frame repeated) and the task's wrong-answer video. Writes JSON and a markdown table
beside it (same name, .md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cos_jax.arrays_io import atomic_write
from cos_jax.pipelines.toy import load_toy
from cos_jax.tasks import ID_TASKS, OOD_TASKS, get_task, still_video
from cos_jax.train.evaluate import (
    EVAL_DIFFICULTY,
    add_eval_arguments,
    entry_label,
    evaluate,
    held_out_samples,
    parse_entry,
    sample_label,
)


def baselines(samples) -> dict:
    rows: dict[str, dict[str, list]] = {}
    for s in samples:
        task = get_task(s.task)
        row = rows.setdefault(sample_label(s), {"gt": [], "still": [], "wrong": []})
        for name, video in (("gt", s.video), ("still", still_video(s)), ("wrong", task.wrong_video(s))):
            result = task.score(video, s.meta)
            row[name].append((result.score, float(result.success)))
    return {t: {k: {"score": float(np.mean([r[0] for r in v])), "success": float(np.mean([r[1] for r in v]))}
                for k, v in row.items()} for t, row in rows.items()}  # fmt: skip


def markdown(report: dict, base: dict) -> str:
    lines = [
        "| task | split | model score | model success | GT | still | wrong answer (success) |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in [t for t in report if t != "mean"]:
        r, b = report[t], base[t]
        lines.append(
            f"| {t} | {get_task(parse_entry(t)[0]).split.upper()} | {r['score']:.3f} | {r['success']:.2f} "
            f"| {b['gt']['score']:.3f} "
            f"| {b['still']['score']:.3f} | {b['wrong']['score']:.3f} ({b['wrong']['success']:.2f}) |"
        )
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="weights .npz (default: the shipped toy)")
    p.add_argument(
        "--tasks",
        nargs="+",
        default=[*ID_TASKS, *OOD_TASKS, "maze@1"],
        help="TASK or TASK@DIFFICULTY entries (bare names: difficulty 2)",
    )
    add_eval_arguments(p)
    args = p.parse_args()
    model, spec = load_toy(args.weights)
    labels = list(dict.fromkeys(map(entry_label, args.tasks)))  # the report keys; maze@2 and maze are one
    samples = held_out_samples(labels, args.per_task, spec, args.start)
    t0 = time.perf_counter()
    report = evaluate(model, spec, samples, args.steps, args.guidance, chunk=args.chunk)
    report.pop("mean")  # replaced by the in-domain mean below
    seconds = time.perf_counter() - t0
    in_domain = [t for t in labels if parse_entry(t)[1] == EVAL_DIFFICULTY and get_task(t).split == "id"]
    if in_domain:
        report["mean"] = {k: float(np.mean([report[t][k] for t in in_domain])) for k in ("score", "success")}
    base = baselines(samples)
    out = Path(args.out)
    meta = {"weights": args.weights or "shipped", "per_task": args.per_task, "start": args.start, "steps": args.steps,
            "guidance": args.guidance, "sampling_s": round(seconds, 1)}  # fmt: skip
    payload = {"meta": meta, "model": report, "baselines": base}
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1)))
    atomic_write(out.with_suffix(".md"), lambda tmp: Path(tmp).write_text(markdown(report, base)))
    print(markdown(report, base))
    print(f"in-domain mean: {report.get('mean')}; sampling {seconds:.0f}s; wrote {out}")


if __name__ == "__main__":
    main()
