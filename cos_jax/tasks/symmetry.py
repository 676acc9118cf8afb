"""Symmetry completion: mirror the left half's coloured cells across the gray axis (VBVR O-49, G-37)."""

from __future__ import annotations

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, progress, weighted
from cos_jax.tasks.grid import block_fractions

HALF_COLS, ROWS, CELL = 5, 10, 3.0
LEFT_X, AXIS_X, RIGHT_X, TOP = 1.0, 16.0, 17.0, 1.0
FILLED = {1: (4, 6, 2), 2: (6, 12, 3), 3: (13, 20, 4)}  # (min cells, max cells, colours)
WHITE = palette.LABEL["white"]


def cells_labels(frames: np.ndarray, res: int, x0: float) -> np.ndarray:
    """Majority label of every cell of one half, (..., ROWS, HALF_COLS); UNKNOWN where no colour has ≥ 50%."""
    f = block_fractions(palette.decode(frames), res, x0, TOP, CELL, ROWS, HALF_COLS)
    lab = f.argmax(-1)
    return np.where(f.max(-1) >= 0.5, lab, palette.UNKNOWN)


class Symmetry(Task):
    name = "symmetry"
    category = "Abstraction"
    split = "ood"
    vbvr = "O-49 symmetry_completion (OOD), G-37 symmetry_random (train)"

    def sample_params(self, rng, difficulty):
        lo, hi, k = FILLED[difficulty]
        n = int(rng.integers(lo, hi + 1))
        colours = list(rng.permutation(palette.OBJECT_COLOURS)[:k])
        spots = sorted(int(i) for i in rng.permutation(ROWS * HALF_COLS)[:n])
        cells = [[*divmod(s, HALF_COLS), colours[i % k]] for i, s in enumerate(spots)]
        return {"left": cells}

    def solve(self, params):
        return {"right": [[r, HALF_COLS - 1 - c, col] for r, c, col in params["left"]]}

    def prompt(self, params):
        return (
            "Coloured cells fill part of the left half of a grid; a gray vertical line marks the axis. Complete "
            "the picture so that it is mirror-symmetric about the axis, filling the right half column by column "
            "from the axis outward. Keep the left half and the axis unchanged."
        )

    def check_difficulty(self, params, solution, difficulty):
        lo, hi, k = FILLED[difficulty]
        assert lo <= len(params["left"]) <= hi and len({c for *_, c in params["left"]}) <= k

    def _video(self, meta, right: list) -> np.ndarray:
        n = meta["num_frames"]
        base = Canvas(meta["resolution"])
        base.rect(AXIS_X, TOP, 1, ROWS * CELL, "gray")
        for r, c, col in meta["params"]["left"]:
            base.rect(LEFT_X + c * CELL, TOP + r * CELL, CELL, CELL, col)
        frames = []
        for t in range(n):
            cv = base.copy()
            shown = progress(t, n) * HALF_COLS
            for r, c, col in right:
                if c + 1 <= shown + 1e-9:
                    cv.rect(RIGHT_X + c * CELL, TOP + r * CELL, CELL, CELL, col)
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, meta["solution"]["right"])

    def wrong_video(self, sample: Sample) -> np.ndarray:
        left = sample.meta["params"]["left"]
        shifted = [[r, c, col] for r, c, col in left]  # translated copy instead of a mirror image
        if sorted(map(tuple, shifted)) == sorted(map(tuple, sample.meta["solution"]["right"])):
            cols = sorted({col for *_, col in left} | {"red", "blue"})
            shifted = [[r, c, cols[(cols.index(col) + 1) % len(cols)]] for r, c, col in left]
        return self._video(sample.meta, shifted)

    def score_frames(self, frames, meta) -> ScoreResult:
        res = meta["resolution"]
        want = np.full((ROWS, HALF_COLS), WHITE)
        for r, c, col in meta["solution"]["right"]:
            want[r, c] = palette.LABEL[col]
        left0 = np.full((ROWS, HALF_COLS), WHITE)
        for r, c, col in meta["params"]["left"]:
            left0[r, c] = palette.LABEL[col]
        right = cells_labels(frames[-1], res, RIGHT_X)
        left = cells_labels(frames[-1], res, LEFT_X)
        predicted, expected = right != WHITE, want != WHITE
        tp = (predicted & (right == want)).sum()
        f1 = 2 * tp / max(predicted.sum() + expected.sum(), 1)
        axis = block_fractions(palette.decode(frames[-1]), res, AXIS_X, TOP, 1, ROWS * 3, 1)[..., palette.LABEL["gray"]]
        subs = {
            "mirror_f1": f1,
            "left_preservation": float((left == left0).mean()),
            "axis_preservation": float(axis.mean() >= 0.8),
        }
        w = {"mirror_f1": 0.6, "left_preservation": 0.3, "axis_preservation": 0.1}
        return weighted(
            subs,
            w,
            success=f1 == 1.0 and (left == left0).all(),
            gate=bool(predicted.any()) and subs["left_preservation"] >= 0.8,
        )
