"""`perturb`: noise at one denoising step (all frames) vs at one latent frame (all steps) — Fig. 3(b).

Sweep: modes (`replace`, `add`, `renoise`) × magnitudes α × (each step in `noise_steps`, each latent frame
in `noise_frames`), plus the clean run; every point runs every sample from the same initial noise, so
drops against clean are paired. Success and score per point come with bootstrap 95 % intervals.

Controls for what the paper's protocol leaves open:
- `replace` at a late step asks an almost clean latent to be rebuilt from pure noise in the steps left, a
  denoising effect; `renoise` keeps the clean estimate and replaces only the noise. Both are swept.
- The scorers read some frames only (`frames_read`, measured per task on ground-truth videos). Each
  frame point also gets a frame-blind score: the pixel frames of the perturbed latent frame are replaced by
  the nearest unperturbed frame before scoring.
- Calibration: for each mode in `calibrate_modes` and step in `calibrate_steps`, the α at which step noise
  halves the clean score, by bisection (sequential points on shard 0).

A point with noise at step s starts from the clean run's state at s (`sample(start=)`) instead of repeating
its first s steps: the same numbers (bit-identical on CPU, tested), about a third less compute for the
grid. Every such point always starts from the clean state, kept by the clean point's run in memory, or
recomputed once by a process that did not run it (a resume, another shard), so no point's numbers depend
on which process ran it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cos_jax.experiments.base import ExperimentError, Point, ReportedIn, check_indices
from cos_jax.probes.plan import Plan, noise_plan

MODES = ("replace", "add", "renoise")
CLEAN = Point("clean", {"kind": "clean", "mode": "replace", "alpha": 0.0}, sequential=True)
MAX_ALPHA = {"replace": 1.0, "renoise": 1.0}


def blind_video(video: np.ndarray, hidden: list[int]) -> np.ndarray:
    """The video with each frame in `hidden` replaced by the nearest frame outside it (earlier on ties)."""
    keep = [t for t in range(video.shape[0]) if t not in set(hidden)]
    out = video.copy()
    for t in hidden:
        out[t] = video[min(keep, key=lambda k: (abs(k - t), k))]
    return out


def frames_read(task, samples) -> list[int]:
    """Pixel frames whose corruption changes the task's score on ground-truth videos: frame t > 0 replaced by
    the problem frame, frame 0 by the last frame (union over `samples`)."""
    read = set()
    for s in samples:
        base = task.score(s.video, s.meta).score
        for t in range(s.video.shape[0]):
            v = s.video.copy()
            v[t] = s.video[0] if t else s.video[-1]
            if abs(task.score(v, s.meta).score - base) > 1e-9:
                read.add(t)
    return sorted(read)


class Perturb(ReportedIn):
    report_module = "cos_jax.experiments.perturb_report"
    name = "perturb"
    paired = False
    defaults: ClassVar[dict] = {
        "modes": ["replace", "renoise", "add"],
        "alphas": [0.25, 0.5, 1.0],
        "noise_steps": [0, 2, 5, 10, 15, 20, 25, 30, 35, 40, 45, 49],
        "noise_frames": [0, 1, 2, 3, 4],
        "calibrate_modes": ["replace", "add"],
        "calibrate_steps": [10, 30],
        "calibrate_iters": 6,
        "add_max_alpha": 4.0,
    }

    # ---- sweep ----------------------------------------------------------------------------------
    def check(self, config: dict, model: dict) -> None:
        for key in ("modes", "calibrate_modes"):
            bad = [m for m in config[key] if m not in MODES]
            if bad:
                raise ExperimentError(f"{key} = {config[key]}: unknown mode(s) {bad}; choose from {list(MODES)}")
        check_indices("noise_steps", config["noise_steps"], config["steps"], "step(s)")
        if config["calibrate_modes"]:
            check_indices("calibrate_steps", config["calibrate_steps"], config["steps"], "step(s)")
        check_indices("noise_frames", config["noise_frames"], model["latent_shape"][0], "latent frame(s)")
        if any(a < 0 for a in config["alphas"]):
            raise ExperimentError(f"alphas = {config['alphas']}: magnitudes must be >= 0")

    def points(self, config: dict, info: dict) -> list[Point]:
        out = [CLEAN]
        for mode in config["modes"]:
            for alpha in config["alphas"]:
                out += [
                    Point(f"step-{mode}-a{alpha:g}-s{s:02d}", {"kind": "step", "mode": mode, "alpha": alpha, "at": s})
                    for s in config["noise_steps"]
                ]
                out += [Point(f"frame-{mode}-a{alpha:g}-f{f}", {"kind": "frame", "mode": mode, "alpha": alpha,
                                                               "at": f}) for f in config["noise_frames"]]  # fmt: skip
        return out

    def next_points(self, config: dict, records: dict) -> list[Point]:
        """The next bisection point of each (mode, step) calibration, replayed from the records."""
        if "clean" not in records:
            return []
        out = []
        for mode in config["calibrate_modes"]:
            for step in config["calibrate_steps"]:
                state = calibration(config, records, mode, step)
                if state["next"] is not None:
                    out.append(state["next"])
        return out

    # ---- one point ------------------------------------------------------------------------------
    def plan_for(self, session, point: Point, worlds: int) -> Plan:
        p = point.params
        shape = (session.config["steps"], session.model.latent_shape[0], worlds)
        where = {"steps": []} if p["kind"] == "clean" else {"frames": [p["at"]]} if p["kind"] == "frame" else {
            "steps": [p["at"]]}  # fmt: skip
        return Plan(noise=noise_plan(*shape, mode=p["mode"], alpha=p["alpha"], **where))

    def keep_steps(self, config: dict) -> list[int]:
        return []

    def sweep_steps(self, config: dict, points: list[Point]) -> int:
        """A step point starts at its step; the others compute every step."""
        return sum(config["steps"] - (p.params["at"] if p.params["kind"] == "step" else 0) for p in points)

    def start_steps(self, config: dict) -> list[int]:
        """The steps whose clean state the step points start from."""
        return sorted(
            set(config["noise_steps"]) | (set(config["calibrate_steps"]) if config["calibrate_modes"] else set())
        )

    def clean_runs(self, session) -> list:
        """The clean point's calls (sample indices, real count, trajectory), keeping the state of every start
        step; the states stay in `session.kept` for the step points."""
        plan = lambda w: self.plan_for(session, CLEAN, w)
        runs = list(session.trajectories(plan, keep_states=self.start_steps(session.config)))
        session.kept["clean_states"] = [traj for _, _, traj in runs]
        return runs

    def starts(self, session, point: Point):
        """What the point's calls start from: the clean state at its step (None for frame points)."""
        if point.params["kind"] != "step":
            return None
        if "clean_states" not in session.kept:  # this process did not run the clean point: recompute it
            self.clean_runs(session)
        states = session.kept["clean_states"]
        return lambda c: states[c].state_at(point.params["at"])

    def run_point(self, session, point: Point) -> dict:
        from cos_jax.tasks import get_task

        n = session.num_samples
        score, success = np.zeros(n), np.zeros(n)
        blind_score, blind_success = np.zeros(n), np.zeros(n)
        frame = point.params["kind"] == "frame"
        hidden = session.model.pixel_frames(point.params["at"]) if frame else []
        if point.id == CLEAN.id:
            runs = self.clean_runs(session)
        else:
            runs = session.trajectories(lambda w: self.plan_for(session, point, w), start=self.starts(session, point))
        for index, real, traj in runs:
            idx = index[:real]
            videos = session.model.decode(traj.latent[:real])
            score[idx], success[idx] = session.score(videos, idx)
            if frame:
                blind = np.stack([blind_video(v, hidden) for v in videos])
                blind_score[idx], blind_success[idx] = session.score(blind, idx)
        record = {"score": score, "success": success}
        if frame:
            record |= {"blind_score": blind_score, "blind_success": blind_success, "pixel_frames": hidden}
        if point.id == "clean":
            tasks = {s.task: [] for s in session.samples}
            for s in session.samples:
                if len(tasks[s.task]) < 3:
                    tasks[s.task].append(s)
            record["frames_read"] = {t: frames_read(get_task(t), ss) for t, ss in tasks.items()}
            record["num_pixel_frames"] = session.model.frames
        return record


class _Pending(Exception):
    """A bisection point whose record does not exist yet."""

    def __init__(self, point: Point):
        self.point = point


def calibration(config: dict, records: dict, mode: str, step: int) -> dict:
    """Replay the bisection for (mode, step): α in [0, max] where the mean score crosses half the clean one.

    Point i0 evaluates α = max; if the score there stays above the target, the threshold is not reached.
    Points i1… are `bisect_threshold`'s evaluations, read from the records; the first missing one is `next`.
    Returns {"history": [(α, score)], "alpha": estimate or None, "reached": bool, "next": Point or None}.
    """
    from cos_jax.analysis.stats import bisect_threshold

    target = 0.5 * float(np.mean(records["clean"]["score"]))
    history: list[tuple[float, float]] = []

    def score(alpha: float) -> float:
        pid = f"calib-{mode}-s{step:02d}-i{len(history)}"
        if pid not in records:
            raise _Pending(Point(pid, {"kind": "step", "mode": mode, "alpha": alpha, "at": step}, sequential=True))
        history.append((alpha, float(np.mean(records[pid]["score"]))))
        return history[-1][1]

    top = MAX_ALPHA.get(mode, config["add_max_alpha"])
    state = {"history": history, "alpha": None, "reached": False, "next": None, "target": target}
    try:
        state["reached"] = score(top) <= target
        if state["reached"]:
            state["alpha"] = bisect_threshold(score, 0.0, top, target, iters=config["calibrate_iters"])[0]
    except _Pending as pending:
        state["next"] = pending.point
    return state
