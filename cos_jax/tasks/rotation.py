"""2-D rotation: turn a chiral tetromino about its centre by the stated angle and direction (VBVR O-85)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, progress, weighted

PIECES = {
    "L": [(0, 0), (1, 0), (2, 0), (2, 1)],
    "J": [(0, 1), (1, 1), (2, 1), (2, 0)],
    "S": [(0, 1), (0, 2), (1, 0), (1, 1)],
    "Z": [(0, 0), (0, 1), (1, 1), (1, 2)],
}
CELL, CENTRE, STEP = 4.0, 16.0, 5
ANGLES = {1: (90,), 2: (90, 180, 270), 3: (45, 135)}


def piece_mask(cv: Canvas, piece: str, angle: float) -> np.ndarray:
    """The piece turned by ``angle`` degrees clockwise about its centroid, placed at the canvas centre."""
    cells = np.array(PIECES[piece], dtype=float)
    cy, cx = (cells + 0.5).mean(0) * CELL
    a = np.deg2rad(angle)
    dx, dy = cv.xs - CENTRE, cv.ys - CENTRE
    # inverse rotation (screen y points down, so +angle is clockwise)
    x = np.cos(a) * dx + np.sin(a) * dy + cx
    y = -np.sin(a) * dx + np.cos(a) * dy + cy
    r, c = np.floor(y / CELL).astype(int), np.floor(x / CELL).astype(int)
    m = np.zeros(cv.xs.shape, dtype=bool)
    for pr, pc in PIECES[piece]:
        m |= (r == pr) & (c == pc) & (y >= 0) & (x >= 0)
    return m


@lru_cache(maxsize=32)
def angle_templates(piece: str, res: int) -> tuple[np.ndarray, np.ndarray]:
    """The piece at every STEP degrees over its symmetry period: (angles, flattened float32 masks)."""
    cv = Canvas(res)
    angles = np.arange(0, period(piece), STEP)
    masks = np.stack([piece_mask(cv, piece, a) for a in angles]).reshape(len(angles), -1)
    return angles, masks.astype(np.float32)


def period(piece: str) -> int:
    return 180 if piece in ("S", "Z") else 360


def wrap(d: np.ndarray, p: int) -> np.ndarray:
    return (np.asarray(d) + p / 2) % p - p / 2


class Rotation(Task):
    name = "rotation"
    category = "Transformation"
    split = "ood"
    vbvr = "O-85 2d_object_rotation (OOD)"

    def sample_params(self, rng, difficulty):
        piece = str(rng.choice(list(PIECES)))
        angles = [a for a in ANGLES[difficulty] if a % period(piece)]
        return {
            "piece": piece,
            "colour": str(rng.choice(palette.OBJECT_COLOURS)),
            "angle": int(rng.choice(angles)),
            "direction": str(rng.choice(["clockwise", "counterclockwise"])),
        }

    def solve(self, params):
        sign = 1 if params["direction"] == "clockwise" else -1
        return {"signed_angle": sign * params["angle"]}

    def prompt(self, params):
        return (
            f"A coloured block shape. Rotate it {params['direction']} by {params['angle']} degrees about its "
            "centre, smoothly, as a rigid shape. Keep its colour and size; keep the camera fixed."
        )

    def check_difficulty(self, params, solution, difficulty):
        assert params["angle"] in ANGLES[difficulty] and params["angle"] % period(params["piece"])

    def _video(self, meta, signed: float) -> np.ndarray:
        n, p = meta["num_frames"], meta["params"]
        frames = []
        for t in range(n):
            cv = Canvas(meta["resolution"])
            cv.paint(piece_mask(cv, p["piece"], signed * progress(t, n)), p["colour"])
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, meta["solution"]["signed_angle"])

    def wrong_video(self, sample: Sample) -> np.ndarray:
        p = sample.meta["params"]
        signed = sample.meta["solution"]["signed_angle"]
        return self._video(sample.meta, -signed if p["angle"] != 180 else signed / 2)

    def score_frames(self, frames, meta) -> ScoreResult:
        p, res = meta["params"], meta["resolution"]
        per = period(p["piece"])
        cv = Canvas(res)
        masks = palette.decode(frames) == palette.LABEL[p["colour"]]
        angles, templates = angle_templates(p["piece"], res)
        flat = masks.reshape(len(masks), -1)
        inter = np.einsum("tp,ap->ta", flat.astype(np.float32), templates)  # no BLAS threads: small and steady
        union = flat.sum(1)[:, None] + templates.sum(1)[None] - inter
        best = angles[(inter / np.maximum(union, 1)).argmax(1)]
        target = piece_mask(cv, p["piece"], meta["solution"]["signed_angle"])
        final_iou = (masks[-1] & target).sum() / max((masks[-1] | target).sum(), 1)
        steps = wrap(np.diff(best), per)
        steps = steps[np.abs(steps) > 0]
        sign = np.sign(meta["solution"]["signed_angle"])
        turned = abs(float(wrap(best[-1] - best[0], per))) >= 10
        area0, area1 = masks[0].sum(), masks[-1].sum()

        def centroid(m):
            return np.array([cv.ys[m].mean(), cv.xs[m].mean()]) if m.any() else np.array([1e3, 1e3])

        subs = {
            "final_iou": final_iou,
            "direction": float((np.sign(steps) == sign).mean()) if steps.size else 0.0,
            "centre": float(np.linalg.norm(centroid(masks[-1]) - centroid(masks[0])) <= 2),
            "colour_area": float(area0 > 0 and abs(area1 / area0 - 1) <= 0.15),
        }
        w = {"final_iou": 0.5, "direction": 0.2, "centre": 0.1, "colour_area": 0.2}
        piece_area = templates[0].sum()
        labelled, count = ndimage.label(masks[-1])
        largest = np.bincount(labelled.ravel())[1:].max() if count else 0
        one_piece = 0.5 <= area1 / piece_area <= 1.5 and largest >= 0.9 * area1
        success = final_iou >= 0.85 and subs["direction"] >= 0.8
        return weighted(subs, w, success=success, gate=turned and one_piece)
