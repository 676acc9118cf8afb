"""`emergent`: measured versions of the paper's qualitative §4 claims, from x̂0 at every denoising step.

- **Perception before action** (Fig. 5): the ground truth splits pixels into static ones (never change
  over the video) and moving ones. For each, the share of pixels (over all frames) whose palette colour in
  x̂0_s differs from the final video's; its settle step is the first step from which the share stays at or
  below `settle`. Palette labels ignore the fine texture that x̂0 loses only in the last steps, which would
  otherwise dominate a pixel distance. The claim predicts static regions settle before moving ones: the
  paired difference (moving − static) > 0.
- **Working memory** (Fig. 4a, b) on `permanence`: after the bar has passed an object, is the object
  back in x̂0_s with its own colour? Per step, the share of (object, frame) cells whose mean soft presence
  of the object's colour is ≥ 0.5 and above every other object colour's (readable), and the mean presence.
- **Self-correction** (Fig. 4c, d) on multiple-choice tasks: the leading live candidate is wrong at some
  step and the final answer right (`cos_jax.experiments.exploration.self_correction`).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cos_jax.experiments.base import ExperimentError, PerTaskSweep, Point


def settle_curves(x0: np.ndarray, gt: np.ndarray, final: np.ndarray) -> dict[str, np.ndarray]:
    """Per step, the share of static / moving pixels whose palette colour in x̂0 differs from the final video's.

    x0 [S, T, H, W, 3], gt and final [T, H, W, 3], uint8. Moving pixels change colour somewhere in the
    ground truth; a region with no pixels gives NaN."""
    from cos_jax.tasks import palette

    labels = palette.decode(gt)
    moving = (labels != labels[:1]).any(0)  # [H, W]
    changed = (palette.decode(x0) != palette.decode(final)[None]).mean(1)  # [S, H, W]: share of frames
    return {name: changed[:, mask].mean(1) if mask.any() else np.full(len(x0), np.nan)
            for name, mask in (("static", ~moving), ("moving", moving))}  # fmt: skip


def memory_cells(x0: np.ndarray, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """Permanence: per step, (readable share, mean presence) over (object, frame after the bar passed it)."""
    from cos_jax.tasks import palette
    from cos_jax.tasks.base import Canvas
    from cos_jax.tasks.permanence import SIZE, bar_x

    n, res = meta["num_frames"], meta["resolution"]
    objects = meta["params"]["objects"]
    colours = sorted({c for _, _, c in objects})
    white = np.full((res, res, 3), 255, np.uint8)
    readable, presence = [], []
    for x, y, colour in objects:
        mask = Canvas(res).rect_mask(x, y, SIZE, SIZE)
        after = [t for t in range(n) if bar_x(t, n) > x + SIZE]  # the bar has fully passed the object
        for t in after:
            frames = x0[:, t]  # [S, H, W, 3]
            scores = {c: palette.toward(frames, white, c)[:, mask].mean(1) for c in colours}
            right = scores[colour]
            others = np.max([scores[c] for c in colours if c != colour], axis=0) if len(colours) > 1 else 0.0
            readable.append((right >= 0.5) & (right > others))
            presence.append(right)
    if not readable:
        return np.zeros(len(x0)), np.zeros(len(x0))
    return np.mean(readable, axis=0), np.mean(presence, axis=0)


class Emergent(PerTaskSweep):
    report_module = "cos_jax.experiments.emergent_report"
    name = "emergent"
    defaults: ClassVar[dict] = {
        "tasks": ["permanence", "tictactoe_two", "tictactoe", "select_next", "maze@1", "majority_colour"],
        "per_task": 32,
        "tau": 0.15,
        "settle": 0.02,
        "batch": 96,
    }

    def check(self, config: dict, model: dict) -> None:
        if not 0 < config["settle"] < 1:
            raise ExperimentError(f"settle = {config['settle']} must lie in (0, 1)")

    def run_point(self, session, point: Point) -> dict:
        from cos_jax.experiments.exploration import self_correction
        from cos_jax.tasks import get_task
        from cos_jax.tasks.exploration import explore

        cfg = session.config
        static, moving, memory, presence, corrected = [], [], [], [], []
        for index, x0, finals in session.decoded_steps(session.entry_subset(point.params["entry"])):
            for w, i in enumerate(index):
                sample = session.samples[i]
                task = get_task(sample.task)
                curves = settle_curves(x0[:, w], sample.video, finals[w])
                static.append(curves["static"])
                moving.append(curves["moving"])
                if sample.task == "permanence":
                    readable, present = memory_cells(x0[:, w], sample.meta)
                    memory.append(readable)
                    presence.append(present)
                if task.multiple_choice:
                    d = explore(task, list(x0[:, w]), sample.meta, tau=cfg["tau"])
                    step = self_correction(np.asarray(d["activations"]), task.correct_candidates(sample.meta),
                                           cfg["tau"])  # fmt: skip
                    corrected.append(-1 if step is None else step)
        record = {"static": np.asarray(static, np.float32), "moving": np.asarray(moving, np.float32)}
        if memory:
            record |= {"memory": np.asarray(memory, np.float32), "presence": np.asarray(presence, np.float32)}
        if corrected:
            record["self_correction_step"] = np.asarray(corrected)
        return record
