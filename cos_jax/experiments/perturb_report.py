"""Results and report of `perturb`: intervals per sweep point, curves against step and frame, calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cos_jax.analysis.report import Figure, Section, Table, curves
from cos_jax.analysis.stats import bootstrap_ci, paired_bootstrap_ci
from cos_jax.experiments.perturb import calibration


def _ci(values) -> list[float]:
    return [round(float(v), 6) for v in bootstrap_ci(np.asarray(values, np.float64))]


def _per_task(values: np.ndarray, labels: list[str]) -> dict[str, float]:
    out: dict[str, list] = {}
    for v, lab in zip(values, labels, strict=True):
        out.setdefault(lab, []).append(float(v))
    return {k: round(float(np.mean(v)), 6) for k, v in out.items()}


def summarise(config: dict, info: dict, records: dict) -> dict:
    labels = [s["label"] for s in info["samples"]]
    clean = records["clean"]
    rows = []
    for pid, rec in records.items():
        p = rec["params"]
        row = {"id": pid, **p, "success": _ci(rec["success"]), "score": _ci(rec["score"]),
               "per_task_success": _per_task(rec["success"], labels)}  # fmt: skip
        if pid != "clean":
            row["success_drop"] = [round(float(v), 6) for v in paired_bootstrap_ci(clean["success"], rec["success"])]
            row["score_drop"] = [round(float(v), 6) for v in paired_bootstrap_ci(clean["score"], rec["score"])]
            row["changed"] = round(float(np.mean(clean["success"] != rec["success"])), 6)
        if "blind_success" in rec:
            row["blind_success"] = _ci(rec["blind_success"])
            row["blind_score"] = _ci(rec["blind_score"])
            row["pixel_frames"] = rec["pixel_frames"]
        rows.append(row)
    calib = []
    for mode in config["calibrate_modes"]:
        for step in config["calibrate_steps"]:
            c = calibration(config, records, mode, step)
            calib.append(
                {
                    "mode": mode,
                    "step": step,
                    "target_score": round(c["target"], 6),
                    "alpha": c["alpha"],
                    "reached": c["reached"],
                    "history": [[round(a, 6), round(s, 6)] for a, s in c["history"]],
                }
            )
    return {
        "clean": {"success": _ci(clean["success"]), "score": _ci(clean["score"]),
                  "per_task_success": _per_task(clean["success"], labels)},
        "frames_read": clean["frames_read"],
        "num_pixel_frames": clean["num_pixel_frames"],
        "points": sorted(rows, key=lambda r: r["id"]),
        "calibration": calib,
        "readings": readings(config, rows),
        "switch_step": info.get("switch_step"),
    }  # fmt: skip


def _series(results: dict, kind: str, mode: str, alpha: float, key: str = "success") -> tuple[list, np.ndarray]:
    rows = sorted((r for r in results["points"] if r["kind"] == kind and r["mode"] == mode and r["alpha"] == alpha
                   and not r["id"].startswith("calib")), key=lambda r: r["at"])  # fmt: skip
    return [r["at"] for r in rows], np.array([r[key] for r in rows]).reshape(-1, 3)


def readings(config: dict, rows: list[dict]) -> list[str]:
    """Plain statements of what the numbers show, one per control (generated, not hand-written)."""
    by = {r["id"]: r for r in rows}
    out = []
    if not config["noise_steps"]:
        return out
    late = max(config["noise_steps"])
    early = min(config["noise_steps"])
    top = max(config["alphas"])
    for mode in config["modes"]:
        a = by.get(f"step-{mode}-a{top:g}-s{early:02d}")
        b = by.get(f"step-{mode}-a{top:g}-s{late:02d}")
        if a and b:
            out.append(f"step noise, {mode} α={top:g}: success {a['success'][0]:.2f} [{a['success'][1]:.2f}, "
                       f"{a['success'][2]:.2f}] at step {early}, {b['success'][0]:.2f} [{b['success'][1]:.2f}, "
                       f"{b['success'][2]:.2f}] at step {late}")  # fmt: skip
    rep, ren = by.get(f"step-replace-a{top:g}-s{late:02d}"), by.get(f"step-renoise-a{top:g}-s{late:02d}")
    if rep and ren:
        verdict = (
            "so the late-step collapse is a denoising effect (the clean estimate, kept by renoise, survives)"
            if ren["success"][1] > rep["success"][2]
            else "renoise does not rescue it either"
        )
        out.append(f"at step {late}, replace gives {rep['success'][0]:.2f} and renoise {ren['success'][0]:.2f}: "
                   f"{verdict}")  # fmt: skip
    for r in rows:
        if r["kind"] == "frame" and r["alpha"] == top and "blind_success" in r:
            gap = r["blind_success"][0] - r["success"][0]
            if gap > 0.1:
                out.append(
                    f"frame {r['at']} ({r['mode']}): success {r['success'][0]:.2f} rises to "
                    f"{r['blind_success'][0]:.2f} when the scorer cannot see the perturbed frames "
                    f"(pixel frames {r['pixel_frames']}): the drop is read off the perturbed frame itself"
                )
    return out


def report(results: dict, out: Path, records: dict) -> list:
    cfg = results["config"]
    clean = results["clean"]
    c = clean["success"]
    sections = [Section(
        "Clean run",
        [f"{results['num_samples']} samples ({', '.join(cfg['tasks'])}, {cfg['per_task']} each, split "
         f"{cfg['split']} from index {cfg['start']}), {cfg['steps']} Euler steps, shift {cfg['shift']:g}, "
         f"CFG {cfg['guidance']:g}, seeds {cfg['seed']}…. Success {c[0]:.3f} [{c[1]:.3f}, {c[2]:.3f}] "
         "(bootstrap 95 % interval over samples)."],
        tables=[Table(["task", "clean success", "pixel frames the scorer reads"],
                      [[k, v, str(results["frames_read"].get(k.split("@")[0], "?"))]
                       for k, v in clean["per_task_success"].items()],
                      f"frames read: measured on ground-truth videos ({results['num_pixel_frames']} pixel frames)")],
    )]  # fmt: skip
    for kind, axis in (("step", "denoising step s (noise on all frames)"), ("frame", "latent frame f (every step)")):
        figures, table = [], []
        for mode in cfg["modes"]:
            series = {}
            for alpha in cfg["alphas"]:
                xs, ys = _series(results, kind, mode, alpha)
                if not xs:
                    continue
                series[f"α={alpha:g}"] = (ys[:, 0], ys[:, 1], ys[:, 2])
                if kind == "frame":
                    _, blind = _series(results, kind, mode, alpha, "blind_success")
                    series[f"α={alpha:g}, frame-blind"] = (blind[:, 0], blind[:, 1], blind[:, 2])
                for x, y in zip(xs, ys, strict=True):
                    table.append([mode, alpha, x, f"{y[0]:.3f} [{y[1]:.3f}, {y[2]:.3f}]"])
            if not series:
                continue
            series["clean"] = (np.full(len(xs), c[0]), np.full(len(xs), c[1]), np.full(len(xs), c[2]))
            switch = results.get("switch_step")
            vlines = {"expert switch": switch - 0.5} if kind == "step" and switch is not None else None
            path = curves(out / f"{kind}_{mode}.png", np.asarray(xs), series, f"noise at {kind}, {mode}", axis,
                          "success rate", vlines=vlines, ylim=(-0.02, 1.02))  # fmt: skip
            figures.append(Figure(path, caption=f"{mode}: success against {axis}; bands are 95 % intervals"))
        if not table:  # a sweep without points of this kind (e.g. noise_frames = [])
            continue
        title = "Noise at a step (all frames)" if kind == "step" else "Noise at a latent frame (all steps)"
        sections.append(Section(title, figures=figures,
                                tables=[Table(["mode", "α", kind, "success [95 % CI]"], table)]))  # fmt: skip
    if results["calibration"]:
        rows = [
            [
                r["mode"],
                r["step"],
                r["target_score"],
                "not reached" if not r["reached"] else r["alpha"],
                "; ".join(f"α={a:.3g}: {s:.3f}" for a, s in r["history"]),
            ]
            for r in results["calibration"]
        ]
        sections.append(Section(
            "Calibration: the α that halves the clean score",
            [f"Bisection over α (replace and renoise in [0, 1], add in [0, {cfg['add_max_alpha']:g}]), "
             f"{cfg['calibrate_iters']} halvings after checking the top of the range."],
            tables=[Table(["mode", "step", "target score", "α", "evaluations"], rows)],
        ))  # fmt: skip
    sections.append(Section("Readings", results["readings"] or ["(no paired controls in this sweep)"]))
    return sections
