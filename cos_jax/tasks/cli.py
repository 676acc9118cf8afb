"""`cos-jax tasks list | generate | score | calibrate`: the task suite from the command line.

The main CLI registers these with ``add_commands(subparsers)``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cos_jax.errors import UsageError

RESULTS_FILE = "cos_jax_results.json"  # per-sample scores of `tasks score` / `bench evaluate` beside the videos


def _task_names(names: list[str] | None) -> list[str]:
    from cos_jax.tasks import ID_TASKS, OOD_TASKS, TASKS

    if not names or names == ["all"]:
        return list(TASKS)
    groups = {"id": list(ID_TASKS), "ood": list(OOD_TASKS)}
    out = []
    for n in names:
        if n in groups:
            out += groups[n]
        elif n in TASKS:
            out.append(n)
        else:
            raise UsageError(f"unknown task {n!r}; choose from all, id, ood, {', '.join(TASKS)}")
    return out


def _list(args) -> int:
    from cos_jax.tasks import TASKS

    print(f"{'task':<16} {'category':<15} {'split':<6} VBVR counterpart")
    for t in TASKS.values():
        print(f"{t.name:<16} {t.category:<15} {t.split:<6} {t.vbvr}")
    return 0


def _generate(args) -> int:
    from cos_jax.tasks.bench import write_bench

    paths = write_bench(
        args.out, _task_names(args.task), args.n, args.difficulty, args.resolution, args.frames, args.split, args.gif
    )
    print(f"wrote {len(paths)} samples under {args.out}")
    return 0


def score_videos(videos: str, bench: str, json_path: str | None = None) -> int:
    """Score ``<videos>/<split>/<task>/<sample>.mp4`` against a bench, print the table, write the JSON."""
    from cos_jax.tasks.bench import evaluate, format_report, write_report

    try:
        report = evaluate(videos, bench)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    out = Path(json_path) if json_path else Path(videos) / RESULTS_FILE
    write_report(out, report)
    print(f"results: {out}")
    return 0


def _score(args) -> int:
    return score_videos(args.videos, args.bench, args.json)


def calibration_rows(
    names: list[str], n: int, resolution: int, frames: int, difficulty: int, first_seed: int = 0
) -> list[dict]:
    """GT / still / wrong-answer scores and speeds for each task over seeds first_seed .. first_seed+n-1."""
    from cos_jax.tasks import get_task, still_video
    from cos_jax.tasks.palette import decode

    decode(np.zeros((1, 3), np.uint8))  # build the decoder's lookup table once, outside the timings
    rows = []
    for name in tqdm(names, desc=f"calibrate {resolution}px", unit="task"):
        task = get_task(name)
        t0 = time.perf_counter()
        samples = [task.generate(seed, difficulty, resolution, frames) for seed in range(first_seed, first_seed + n)]
        gen_s = time.perf_counter() - t0
        gt, still, wrong = [], [], []
        t0 = time.perf_counter()
        for s in samples:
            gt.append(task.score(s.video, s.meta))
        score_s = time.perf_counter() - t0
        for s in samples:
            still.append(task.score(still_video(s), s.meta))
            wrong.append(task.score(task.wrong_video(s), s.meta))
        rows.append({
            "task": name, "category": task.category, "split": task.split,
            "gt": float(np.mean([r.score for r in gt])), "gt_success": float(np.mean([r.success for r in gt])),
            "still": float(np.mean([r.score for r in still])), "still_max": float(max(r.score for r in still)),
            "wrong": float(np.mean([r.score for r in wrong])),
            "wrong_success": float(np.mean([r.success for r in wrong])),
            "samples_per_s": n / gen_s, "score_ms": 1000 * score_s / n,
        })  # fmt: skip
    return rows


def _calibrate(args) -> int:
    names = _task_names(args.task)
    for res in args.resolution:
        rows = calibration_rows(names, args.n, res, args.frames, args.difficulty, args.first_seed)
        seeds = f"seeds {args.first_seed}..{args.first_seed + args.n - 1}"
        print(f"\n{res}x{res}, {args.frames} frames, difficulty {args.difficulty}, {seeds}\n")
        print(
            "| task | category | split | GT score (success) | still (max) | wrong (success) "
            "| gen samples/s | score ms/video |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['task']} | {r['category']} | {r['split'].upper()} | {r['gt']:.3f} ({r['gt_success']:.0%}) | "
                f"{r['still']:.3f} ({r['still_max']:.3f}) | {r['wrong']:.3f} ({r['wrong_success']:.0%}) | "
                f"{r['samples_per_s']:.0f} | {r['score_ms']:.1f} |"
            )
    return 0


def add_commands(subparsers) -> None:
    """Register ``tasks`` and its sub-commands on the main CLI's subparsers."""
    tasks = subparsers.add_parser("tasks", help="procedural reasoning tasks: list, generate, score, calibrate")
    sub = tasks.add_subparsers(dest="tasks_command", required=True)
    sub.add_parser("list", help="the twelve tasks with category and ID/OOD split").set_defaults(func=_list)

    def shape(p):
        p.add_argument("--difficulty", type=int, default=2, choices=(1, 2, 3), help="3 = parameter-OOD stress level")
        p.add_argument("--frames", type=int, default=17, help="frame count, 4n+1 (9, 17, 33)")

    g = sub.add_parser("generate", help="write samples in the VBVR-Bench folder layout")
    g.add_argument("--task", nargs="+", default=["all"], help="task names, or all / id / ood")
    g.add_argument("--n", type=int, default=5, help="samples per task")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--resolution", type=int, default=64, help="frame side in pixels (a multiple of 32)")
    g.add_argument("--split", default="test", choices=("train", "test"), help="parameter-hash split to draw from")
    g.add_argument("--gif", action="store_true", help="also write ground_truth.gif")
    shape(g)
    g.set_defaults(func=_generate)

    s = sub.add_parser("score", help="score generated videos <videos>/<split>/<task>/<sample>.mp4 against a bench")
    s.add_argument("--videos", required=True, help="folder of generated videos")
    s.add_argument("--bench", required=True, help="bench folder written by `cos-jax tasks generate`")
    s.add_argument("--json", help="results file (default: <videos>/cos_jax_results.json)")
    s.set_defaults(func=_score)

    c = sub.add_parser("calibrate", help="GT / still / wrong-answer scores and speeds per task (markdown table)")
    c.add_argument("--task", nargs="+", default=["all"])
    c.add_argument("--n", type=int, default=20, help="seeds per task")
    c.add_argument("--first-seed", type=int, default=0, help="first seed of the sweep")
    c.add_argument("--resolution", type=int, nargs="+", default=[32, 64])
    shape(c)
    c.set_defaults(func=_calibrate)
