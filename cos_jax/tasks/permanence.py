"""Object permanence: a gray bar slides across, hiding the objects; they must reappear unchanged
(VBVR G-21 multiple_occlusions, VMEvalKit object_permanence)."""

from __future__ import annotations

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, progress, weighted

BAR, SIZE, TRAVEL = 6.0, 4.0, 26.0  # bar width, object size, bar travel (units)
OBJECTS = {1: 2, 2: 3, 3: 4}
GRAY = palette.LABEL["gray"]


def bar_x(t: int, n: int) -> float:
    return TRAVEL * progress(t, n)


class Permanence(Task):
    name = "permanence"
    category = "Transformation"
    split = "id"
    vbvr = "G-21 multiple_occlusions_vertical (ID), VMEvalKit object_permanence"

    def sample_params(self, rng, difficulty):
        objs: list[list] = []
        while len(objs) < OBJECTS[difficulty]:
            x, y = int(rng.integers(7, 22)), int(rng.integers(3, 26))
            if all(abs(x - a) >= SIZE + 1 or abs(y - b) >= SIZE + 1 for a, b, _ in objs):
                objs.append([x, y, str(rng.choice(palette.OBJECT_COLOURS))])
        return {"objects": objs}

    def solve(self, params):
        return {"bar_travel_units": TRAVEL, "final_objects": params["objects"]}

    def prompt(self, params):
        return (
            "Coloured blocks and a gray bar at the left edge. Slide the bar to the right edge at a constant speed, "
            "passing in front of the blocks. Blocks behind the bar are hidden; they do not move or change, so "
            "show each one again, unchanged, once the bar has passed."
        )

    def check_difficulty(self, params, solution, difficulty):
        assert len(params["objects"]) == OBJECTS[difficulty]
        assert all(x >= 7 and x + SIZE <= TRAVEL for x, _, _ in params["objects"])

    def _video(self, meta, vanish: bool = False) -> np.ndarray:
        n = meta["num_frames"]
        frames = []
        for t in range(n):
            cv = Canvas(meta["resolution"])
            bx = bar_x(t, n)
            for x, y, colour in meta["params"]["objects"]:
                if not (vanish and bx > x):
                    cv.rect(x, y, SIZE, SIZE, colour)
            cv.rect(bx, 0, BAR, 32, "gray")
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta)

    def wrong_video(self, sample: Sample) -> np.ndarray:
        return self._video(sample.meta, vanish=True)  # objects vanish once the bar has covered them

    def score_frames(self, frames, meta) -> ScoreResult:
        res, n = meta["resolution"], meta["num_frames"]
        u = res / 32
        labels = palette.decode(frames)
        gray_cols = (labels == GRAY).mean(1) >= 0.7  # (T, W)
        cv = Canvas(res)
        motion, occlusion = [], []
        for t in range(n):
            cols = np.flatnonzero(gray_cols[t])
            if cols.size == 0:
                motion.append(False)
                continue
            centre = (cols.mean() + 0.5) / u
            motion.append(abs(centre - (bar_x(t, n) + BAR / 2)) <= 2)
            occlusion.append((labels[t][:, cols] == GRAY).mean() >= 0.95)
        covered_any, perm, final_ok = False, [], []
        for x, y, colour in meta["params"]["objects"]:
            m = cv.rect_mask(x, y, SIZE, SIZE)
            cover = (gray_cols[:, None, :] & m[None]).sum((1, 2)) / m.sum()  # fraction under the bar
            intact = (labels[:, m] == palette.LABEL[colour]).mean(1) >= 0.9
            hit = np.flatnonzero(cover >= 0.5)
            covered_any |= hit.size > 0
            later = [t for t in range(hit[0] + 1, n) if cover[t] == 0] if hit.size else []
            perm.append(bool(hit.size) and all(intact[t] for t in later))
            final_ok.append(bool(intact[-1]))
        subs = {
            "motion": float(np.mean(motion)),
            "occlusion": float(np.mean(occlusion)) if occlusion else 0.0,
            "permanence": float(np.mean(perm)),
            "final_intact": float(all(final_ok)),
        }
        w = {"motion": 0.2, "occlusion": 0.2, "permanence": 0.4, "final_intact": 0.2}
        success = subs["motion"] >= 0.9 and subs["permanence"] == 1 and subs["final_intact"] == 1
        return weighted(subs, w, success=success, gate=covered_any)
