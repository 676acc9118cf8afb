"""`steps_frames`: success against the number of denoising steps and against the number of frames.

The paper (project page, evidence #1): "performance is tightly coupled with specific denoising steps, while
reducing temporal resolution (fewer frames) has only minor effects". Sweep: `step_counts` at the model's
frame count, and `frame_counts` (4n+1) at `steps`; every point runs every sample from its seed (the
initial noise differs in shape across frame counts, so frame points are paired by sample, not by noise).
Each (steps, frames) pair is its own compilation, necessarily: the shapes differ.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np

from cos_jax.analysis.report import Figure, Section, Table, curves
from cos_jax.analysis.stats import bootstrap_ci, paired_bootstrap_ci
from cos_jax.experiments.base import CleanSweep, ExperimentError, Point
from cos_jax.probes.plan import Plan


def _r(values) -> list[float]:
    return [round(float(v), 6) for v in values]


class StepsFrames(CleanSweep):
    name = "steps_frames"
    defaults: ClassVar[dict] = {"step_counts": [5, 10, 20, 30, 50], "frame_counts": [9, 13, 17, 21, 25]}

    def check(self, config: dict, model: dict) -> None:
        bad = [n for n in config["step_counts"] if n < 1]
        if bad:
            raise ExperimentError(f"step_counts = {config['step_counts']}: counts {bad} must be >= 1")
        bad = [f for f in config["frame_counts"] if f < 9 or (f - 1) % 4]
        if bad:
            raise ExperimentError(f"frame_counts = {config['frame_counts']}: {bad} are not 4n+1 >= 9 (9, 13, 17, …)")

    def _frames(self, config: dict, info: dict) -> int:
        return config["frames"] or info["model"]["frames"]

    def points(self, config: dict, info: dict) -> list[Point]:
        frames = self._frames(config, info)
        pairs = [(n, frames) for n in config["step_counts"]] + [(config["steps"], f) for f in config["frame_counts"]]
        return [Point(f"s{n:03d}-f{f:03d}", {"steps": n, "frames": f}) for n, f in dict.fromkeys(pairs)]

    def sweep_steps(self, config: dict, points: list[Point]) -> int:
        """Each point's step count (points at other frame counts are costed at the model's)."""
        return sum(p.params["steps"] for p in points)

    def run_point(self, session, point: Point) -> dict:
        from cos_jax.experiments.session import build_session

        p = point.params
        config = {**session.config, "steps": p["steps"]}
        if p["frames"] == session.model.frames:  # same samples and conditions; only the sampler changes
            sub = dataclasses.replace(session, config=config, sampling=session.model.sampling(config))
        else:  # samples rendered at this frame count, their conditions encoded again
            sub = build_session(config, session.model.with_frames(p["frames"]))
        n = sub.num_samples
        score, success = np.zeros(n), np.zeros(n)
        for index, real, traj in sub.trajectories(lambda w: Plan()):
            idx = index[:real]
            score[idx], success[idx] = sub.score(sub.model.decode(traj.latent[:real]), idx)
        return {"score": score, "success": success}

    def summarise(self, config: dict, info: dict, records: dict) -> dict:
        frames = self._frames(config, info)
        reference = records[f"s{config['steps']:03d}-f{frames:03d}"]
        labels = [s["label"] for s in info["samples"]]

        def row(rec):
            per_task = {}
            for v, lab in zip(rec["success"], labels, strict=True):
                per_task.setdefault(lab, []).append(v)
            return {"success": _r(bootstrap_ci(rec["success"])), "score": _r(bootstrap_ci(rec["score"])),
                    "drop": _r(paired_bootstrap_ci(reference["success"], rec["success"])),
                    "per_task": {k: round(float(np.mean(v)), 6) for k, v in per_task.items()}}  # fmt: skip

        steps = {n: row(records[f"s{n:03d}-f{frames:03d}"]) for n in config["step_counts"]}
        frame_rows = {f: row(records[f"s{config['steps']:03d}-f{f:03d}"]) for f in config["frame_counts"]}
        return {"reference": {"steps": config["steps"], "frames": frames}, "by_steps": steps, "by_frames": frame_rows}

    def report(self, results: dict, out: Path, records: dict) -> list:
        ref = results["reference"]
        sections = []
        for key, axis, fixed in (("by_steps", "denoising steps", f"{ref['frames']} frames"),
                                 ("by_frames", "frames", f"{ref['steps']} steps")):  # fmt: skip
            rows = results[key]
            xs = np.array([int(k) for k in rows])
            ys = np.array([rows[k]["success"] for k in rows])
            series = {"all tasks": tuple(ys.T)}
            tasks = next(iter(rows.values()))["per_task"]
            for t in tasks:
                series[t] = (np.array([rows[k]["per_task"][t] for k in rows]), None, None)
            path = curves(out / f"{key}.png", xs, series, f"success against {axis} ({fixed})", axis,
                          "success rate", ylim=(-0.02, 1.02))  # fmt: skip
            table = [[k, f"{v['success'][0]:.3f} [{v['success'][1]:.3f}, {v['success'][2]:.3f}]",
                      f"{v['drop'][0]:.3f} [{v['drop'][1]:.3f}, {v['drop'][2]:.3f}]",
                      *[v["per_task"][t] for t in tasks]] for k, v in rows.items()]  # fmt: skip
            head = [axis, "success [95 % CI]", f"drop vs {ref['steps']} steps × {ref['frames']} frames", *tasks]
            sections.append(
                Section(
                    f"Success against {axis} at {fixed}",
                    tables=[Table(head, table)],
                    figures=[Figure(path, caption="all-task line with its 95 % interval")],
                )
            )
        return sections
