"""`cos-jax demo`: the shipped toy world on held-out puzzles, with the Chain-of-Steps picture.

For each sample it writes the generated video (mp4 + gif), a step × frame grid of decoded x̂0, and for
multiple-choice / path tasks the candidate activations over steps (exploration diagnostics); then a
score table (stdout + scores.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cos_jax.analysis.figures import save_activation_figure, save_grid_figure, step_frame_grid
from cos_jax.pipelines.toy import decode_video, generate, load_toy, toy_sampling
from cos_jax.train.evaluate import held_out_samples

DEMO_TASKS = ("select_next", "tictactoe", "tictactoe_two", "maze")


def run_demo(out: str | Path = "demo_out", per_task: int = 2, steps: int = 50, guidance: float = 5.0,
             tasks=DEMO_TASKS, weights: str | None = None) -> dict:  # fmt: skip
    from cos_jax.tasks import get_task
    from cos_jax.tasks.exploration import explore
    from cos_jax.tasks.video_io import write_gif, write_mp4

    out = Path(out)
    model, spec = load_toy(weights)  # before anything is written: bad weights leave no folder behind
    out.mkdir(parents=True, exist_ok=True)
    samples = held_out_samples(tasks, per_task, spec)
    print(f"sampling {len(samples)} held-out puzzles with the toy world ({steps} Euler steps, CFG {guidance})")
    traj = generate(model, spec, np.stack([s.first_frame for s in samples]), [s.prompt for s in samples],
                    seeds=list(range(len(samples))), config=toy_sampling(steps, guidance), progress=True)  # fmt: skip
    x0_videos = decode_video(spec, traj.x0)  # [S, W, T, H, W, 3]
    finals = decode_video(spec, traj.latent)
    shown_steps = sorted({0, 1, 2, 4, 6, 8, 10, 15, 20, 30, 40, steps - 1} & set(range(steps)))
    shown_frames = list(range(0, spec.frames, 2))
    rows = []
    for w, sample in enumerate(tqdm(samples, desc="writing results", unit="sample")):
        task = get_task(sample.task)
        name = f"{sample.task}_{w:02d}"
        write_mp4(out / f"{name}.mp4", finals[w])
        write_gif(out / f"{name}.gif", finals[w])
        grid = step_frame_grid(x0_videos[:, w], shown_steps, shown_frames)
        save_grid_figure(out / f"{name}_x0_steps.png", grid, shown_steps, shown_frames,
                         f"{sample.task}: x̂0 at each denoising step (rows) by frame (columns)")  # fmt: skip
        result = task.score(finals[w], sample.meta)
        row = {"sample": name, "task": sample.task, "score": round(result.score, 4), "success": result.success}
        if task.multiple_choice:
            diag = explore(task, list(x0_videos[:, w]), sample.meta)
            correct = task.correct_candidates(sample.meta)
            title = f"{sample.task}: candidates over steps"
            save_activation_figure(out / f"{name}_exploration.png", diag["activations"], correct, title)
            row.update({k: diag[k] for k in ("max_breadth", "prune_step", "commit_step", "switches")})
            (out / f"{name}_exploration.json").write_text(json.dumps(diag, indent=1))
        rows.append(row)
    report = {"rows": rows, "steps": steps, "guidance": guidance,
              "mean_score": float(np.mean([r["score"] for r in rows])),
              "success_rate": float(np.mean([r["success"] for r in rows]))}  # fmt: skip
    (out / "scores.json").write_text(json.dumps(report, indent=1))
    print(format_table(rows))
    print(f"\nwrote {out}/: <sample>.mp4/.gif (videos), <sample>_x0_steps.png (Chain-of-Steps grids),")
    print("<sample>_exploration.png/.json (candidates over steps), scores.json")
    return report


def format_table(rows: list[dict]) -> str:
    head = f"{'sample':<18} {'score':>6} {'success':>8} {'breadth':>8} {'pruned':>7} {'commit':>7} {'switches':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        diag = " ".join(f"{r.get(k, '-')!s:>{w}}" for k, w in (("max_breadth", 8), ("prune_step", 7),
                                                                 ("commit_step", 7), ("switches", 9)))  # fmt: skip
        lines.append(f"{r['sample']:<18} {r['score']:>6.3f} {r['success']!s:>8} {diag}")
    lines.append("breadth: most candidates live at once in x̂0; pruned: step from which at most one stays live;")
    lines.append("commit: step from which the final answer leads; switches: changes of the leading candidate")
    return "\n".join(lines)
