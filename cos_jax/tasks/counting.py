"""Counting with a tally bar: fill one bar slot per object, left to right (VBVR O-33, with a tally bar
instead of numerals, which are illegible at 32–64 px)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, progress, region_labels, weighted

SLOTS, GRID_COLS, GRID_ROWS = 10, 10, 7
COUNT_RANGE = {1: (1, 4), 2: (5, 8), 3: (9, 10)}
BLACK = palette.LABEL["black"]


def slot_rect(i: int) -> tuple[float, float, float, float]:
    return 1 + 3 * i, 26.0, 2.0, 4.0


class Counting(Task):
    name = "counting"
    category = "Perception"
    split = "ood"
    vbvr = "O-33 counting_object (ID)"

    def sample_params(self, rng, difficulty):
        lo, hi = COUNT_RANGE[difficulty]
        n = int(rng.integers(lo, hi + 1))
        spots = sorted(int(i) for i in rng.permutation(GRID_COLS * GRID_ROWS)[:n])
        colours = [str(rng.choice(palette.OBJECT_COLOURS)) for _ in range(n)]
        return {"objects": [[*divmod(s, GRID_COLS), c] for s, c in zip(spots, colours, strict=True)]}

    def solve(self, params):
        return {"count": len(params["objects"])}

    def prompt(self, params):
        return (
            "Coloured blocks above a bar of ten gray slots. Count the blocks and fill that many bar slots in "
            "black, one at a time from the left. Do not move or change the blocks."
        )

    def check_difficulty(self, params, solution, difficulty):
        lo, hi = COUNT_RANGE[difficulty]
        assert lo <= solution["count"] <= hi
        assert len({(r, c) for r, c, _ in params["objects"]}) == solution["count"]

    def _video(self, meta, count: int) -> np.ndarray:
        n = meta["num_frames"]
        base = Canvas(meta["resolution"])
        for r, c, colour in meta["params"]["objects"]:
            base.rect(1 + 3 * c, 1 + 3 * r, 2, 2, colour)
        frames = []
        for t in range(n):
            cv = base.copy()
            k = math.floor(progress(t, n) * count + 0.5)
            for i in range(SLOTS):
                cv.rect(*slot_rect(i), "black" if i < k else "gray")
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, meta["solution"]["count"])

    def wrong_video(self, sample: Sample) -> np.ndarray:
        n = sample.meta["solution"]["count"]
        return self._video(sample.meta, n + 1 if n < SLOTS else n - 1)

    def score_frames(self, frames, meta) -> ScoreResult:
        res, target = meta["resolution"], meta["solution"]["count"]
        labels = palette.decode(frames)
        filled = np.array([[(region_labels(lab, res, *slot_rect(i)) == BLACK).mean() >= 0.6 for i in range(SLOTS)]
                           for lab in labels])  # fmt: skip
        final = filled[-1]
        count = int(final.sum())
        prefix = bool(final[:count].all())
        top = region_labels(labels[-1], res, 0, 0, 32, 22)
        blobs = ndimage.label((top != palette.LABEL["white"]) & (top >= 0), structure=np.ones((3, 3)))[1]
        counts = filled.sum(1)
        subs = {
            "count_exact": float(count == target),
            "count_close": max(0.0, 1 - abs(count - target) / target),
            "prefix_order": float(prefix),
            "objects_preserved": float(blobs == target),
            "monotonic": float((np.diff(counts) >= 0).all()),
        }
        w = {"count_exact": 0.5, "count_close": 0.2, "prefix_order": 0.1, "objects_preserved": 0.1, "monotonic": 0.1}
        success = count == target and prefix and blobs == target
        ink0 = target * 2 * 2 / (32 * 22)  # the generator's objects: 2×2 units each
        ink = (top != palette.LABEL["white"]).mean()
        return weighted(subs, w, success=success, gate=count > 0 and ink <= 1.5 * ink0 + 0.02)
