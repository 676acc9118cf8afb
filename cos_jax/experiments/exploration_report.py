"""Results and report of `exploration`: per-task breadth, prune/commit/self-correction statistics, x̂0 grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cos_jax.analysis.report import Figure, Section, Table, curves
from cos_jax.analysis.stats import bootstrap_ci


def _ci(values) -> list[float] | None:
    values = np.asarray(values, np.float64)
    return [round(float(v), 6) for v in bootstrap_ci(values)] if values.size else None


def _curve(acts: list[np.ndarray], chosen) -> list[float]:
    """Mean over samples of the strongest activation among the chosen candidates at every step."""
    rows = [a[:, idx].max(1) if len(idx) else np.zeros(len(a)) for a, idx in zip(acts, chosen, strict=True)]
    return [round(float(v), 6) for v in np.mean(rows, axis=0)]


def summarise(config: dict, info: dict, records: dict) -> dict:
    steps = config["steps"]
    tasks = {}
    for pid, rec in records.items():
        d = rec["diagnostics"]
        acts = [np.asarray(x["activations"]) for x in d]
        right = [x["correct"] for x in d]
        wrong = [[k for k in range(a.shape[1]) if k not in set(c)] for a, c in zip(acts, right, strict=True)]
        commits = [x["commit_step"] for x in d if x["commit_step"] is not None]
        corrections = [x["self_correction_step"] for x in d if x["self_correction_step"] is not None]
        prune = [x["prune_step"] for x in d]
        commit_all = [x["commit_step"] for x in d]
        tasks[rec["params"]["entry"]] = {
            "n": len(d),
            "success": _ci(rec["success"]),
            "explored": _ci([x["max_breadth"] > 1 for x in d]),
            "mean_max_breadth": round(float(np.mean([x["max_breadth"] for x in d])), 6),
            "switched": _ci([x["switches"] > 0 for x in d]),
            "commit_step": _ci(commits),
            "prune_step": _ci(prune),
            "committed_correct": _ci([x["committed_correct"] for x in d]),
            "self_correction": _ci([x["self_correction_step"] is not None for x in d]),
            "self_correction_step": _ci(corrections),
            "prune_cdf": [round(float(np.mean(np.asarray(prune) <= s)), 6) for s in range(steps)],
            "commit_cdf": [
                round(float(np.mean([c is not None and c <= s for c in commit_all])), 6) for s in range(steps)
            ],
            "correct_activation": _curve(acts, right),
            "wrong_activation": _curve(acts, wrong),
            "point": pid,
        }
    return {"tau": config["tau"], "tasks": tasks}


def _fmt(ci) -> str:
    return "–" if ci is None else f"{ci[0]:.3f} [{ci[1]:.3f}, {ci[2]:.3f}]"


def report(results: dict, out: Path, records: dict) -> list:
    from cos_jax.analysis.figures import save_grid_figure

    cfg = results["config"]
    steps = np.arange(cfg["steps"])
    tasks = results["tasks"]
    head = ["task", "n", "success", "explored (>1 live)", "mean max breadth", "switched", "commit step",
            "prune step", "self-corrected", "self-correction step"]  # fmt: skip
    rows = [[t, v["n"], _fmt(v["success"]), _fmt(v["explored"]), v["mean_max_breadth"], _fmt(v["switched"]),
             _fmt(v["commit_step"]), _fmt(v["prune_step"]), _fmt(v["self_correction"]),
             _fmt(v["self_correction_step"])] for t, v in tasks.items()]  # fmt: skip
    act = {}
    for t, v in tasks.items():
        act[f"{t}: right"] = (np.asarray(v["correct_activation"]), None, None)
        act[f"{t}: wrong"] = (np.asarray(v["wrong_activation"]), None, None)
    f1 = curves(
        out / "activations.png",
        steps,
        act,
        "strongest right vs wrong candidate in x̂0 (mean over samples)",
        "denoising step",
        f"soft activation (live above τ = {results['tau']:g})",
        ylim=(-0.02, 1.02),
    )
    cdf = {f"{t}: pruned": (np.asarray(v["prune_cdf"]), None, None) for t, v in tasks.items()}
    cdf |= {f"{t}: committed": (np.asarray(v["commit_cdf"]), None, None) for t, v in tasks.items()}
    f2 = curves(out / "prune_commit_cdf.png", steps, cdf, "share of samples pruned / committed by step",
                "denoising step", "share of samples", ylim=(-0.02, 1.02))  # fmt: skip
    sections = [Section(
        "Exploration statistics",
        [f"x̂0 at every one of {cfg['steps']} steps, candidate activations read softly (τ = {results['tau']:g}). "
         "Explored: more than one candidate live at some step. Commit step: from which the final answer leads. "
         "Prune step: from which at most one candidate stays live. Self-corrected: the leading live candidate "
         "is wrong at some step and the final answer right (step: the last wrong one). Intervals: bootstrap 95 %."],
        tables=[Table(head, rows)],
        figures=[Figure(f1, caption="right answers (strongest right candidate) against the strongest wrong one"),
                 Figure(f2, caption="cumulative share of samples whose prune / commit step is at most s")],
    )]  # fmt: skip
    grids = []
    for t, v in tasks.items():
        rec = records[v["point"]]
        for k, grid in enumerate(rec.get("grids", [])):
            path = out / f"grid_{v['point']}_{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_grid_figure(path, grid, rec["grid_steps"], rec["grid_frames"], f"{t}, sample {k}: x̂0 by step × frame")
            grids.append(Figure(path, caption=f"{t}, sample {k}: rows = denoising steps, columns = frames"))
    if grids:
        sections.append(Section("x̂0 step × frame grids", figures=grids))
    return sections
