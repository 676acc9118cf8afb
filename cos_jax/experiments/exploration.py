"""`exploration`: does x̂0 hold several candidate answers in early steps and prune them later (Fig. 1, 2)?

For every sample of a multiple-choice or path task: x̂0 at every step, decoded; the candidate activations
the task reads from it (soft: how far pixels moved toward each answer's colour, `Task.candidate_activations`);
and the diagnostics of `cos_jax.tasks.exploration` (breadth, prune step, commit step, switches). Across
samples, per task: how often more than one candidate is live, the distributions of prune and commit steps,
and self-correction (the leading live candidate is wrong at some step and the final answer right). The
step × frame x̂0 grid of the first `grid_samples` samples of each task is kept for the report.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cos_jax.experiments.base import ExperimentError, PerTaskSweep, Point

GRID_STEPS = (0, 1, 2, 4, 6, 8, 10, 15, 20, 30, 40, 49)


def self_correction(activations: np.ndarray, correct, tau: float) -> int | None:
    """The last step at which the leading live candidate was wrong, when the final one is right (else None)."""
    a = np.asarray(activations)
    top, live = a.argmax(1), a.max(1) >= tau
    if not live[-1] or int(top[-1]) not in set(correct):
        return None
    wrong = np.flatnonzero(live & ~np.isin(top, list(correct)))
    return int(wrong[-1]) if wrong.size else None


class Exploration(PerTaskSweep):
    report_module = "cos_jax.experiments.exploration_report"
    name = "exploration"
    defaults: ClassVar[dict] = {
        "tasks": ["tictactoe_two", "tictactoe", "select_next", "maze@1", "maze"],
        "per_task": 32,
        "tau": 0.15,
        "grid_samples": 2,
        "batch": 64,
    }

    def check(self, config: dict, model: dict) -> None:
        from cos_jax.tasks import TASKS

        bad = [t for t in config["tasks"] if t.split("@")[0] in TASKS and not TASKS[t.split("@")[0]].multiple_choice]
        if bad:
            choice = [n for n, t in TASKS.items() if t.multiple_choice]
            raise ExperimentError(f"tasks {bad} have no candidate answers to track; choose from {choice}")
        if not 0 < config["tau"] < 1:
            raise ExperimentError(f"tau = {config['tau']} must lie in (0, 1)")

    def run_point(self, session, point: Point) -> dict:
        from cos_jax.analysis.figures import step_frame_grid
        from cos_jax.tasks import get_task
        from cos_jax.tasks.exploration import explore

        cfg = session.config
        steps = cfg["steps"]
        shown = [s for s in GRID_STEPS if s < steps - 1] + [steps - 1]
        frames = list(range(0, session.model.frames, 2))
        diags, success, grids = [], [], []
        for index, x0, finals in session.decoded_steps(session.entry_subset(point.params["entry"])):
            success += session.score(finals, index)[1].tolist()
            for w, i in enumerate(index):
                sample = session.samples[i]
                task = get_task(sample.task)
                d = explore(task, list(x0[:, w]), sample.meta, tau=cfg["tau"])
                d["correct"] = list(task.correct_candidates(sample.meta))
                d["self_correction_step"] = self_correction(np.asarray(d["activations"]), d["correct"], cfg["tau"])
                diags.append(d)
                if len(grids) < cfg["grid_samples"]:
                    grids.append(step_frame_grid(x0[:, w], shown, frames))
        record = {"diagnostics": diags, "success": np.asarray(success), "grid_steps": shown, "grid_frames": frames}
        if grids:
            record["grids"] = np.stack(grids)
        return record
