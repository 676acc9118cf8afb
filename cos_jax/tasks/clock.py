"""Clock: advance the hour hand clockwise by k hours (VBVR O-53 clock)."""

from __future__ import annotations

import itertools

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, progress, weighted

CENTRE, HAND, TICKS, HALF_WIDTH = 16.0, 10.0, 13.0, 0.75
HOURS = {1: (1, 3), 2: (1, 11), 3: (13, 17)}  # difficulty 3 needs more than a full turn


def hand_mask(cv: Canvas, degrees: float) -> np.ndarray:
    """A hand from the centre to radius HAND pointing at ``degrees`` clockwise from 12 o'clock."""
    a = np.deg2rad(degrees)
    ux, uy = np.sin(a), -np.cos(a)
    dx, dy = cv.xs - CENTRE, cv.ys - CENTRE
    along = dx * ux + dy * uy
    across = np.abs(-dx * uy + dy * ux)
    return (along >= -0.5) & (along <= HAND) & (across <= HALF_WIDTH)


def hand_angle(cv: Canvas, black: np.ndarray) -> float | None:
    """Circular mean direction (degrees clockwise from 12) of black pixels at radius 2.5–11 units; None unless
    they look like one hand (about the right pixel count, concentrated in one direction)."""
    dx, dy = cv.xs - CENTRE, cv.ys - CENTRE
    r = np.hypot(dx, dy)
    m = black & (r >= 2.5) & (r <= 11)
    expected = (HAND - 2.5) * 2 * HALF_WIDTH * (cv.res / 32) ** 2  # pixels of a hand in the annulus
    if not 0.4 * expected <= m.sum() <= 2.5 * expected:
        return None
    ang = np.arctan2(dx[m], -dy[m])
    s, c = np.sin(ang).mean(), np.cos(ang).mean()
    if np.hypot(s, c) < 0.8:  # pixels spread around the dial, not one hand
        return None
    return float(np.rad2deg(np.arctan2(s, c)) % 360)


class Clock(Task):
    name = "clock"
    category = "Knowledge"
    split = "id"
    vbvr = "O-53 clock (ID)"

    def sample_params(self, rng, difficulty):
        lo, hi = HOURS[difficulty]
        return {"start_hour": int(rng.integers(12)), "advance": int(rng.integers(lo, hi + 1))}

    def solve(self, params):
        return {"end_hour": (params["start_hour"] + params["advance"]) % 12}

    def prompt(self, params):
        k = params["advance"]
        return (
            f"A clock face with one black hour hand. Advance the time by {k} hour{'s' if k > 1 else ''}: turn the "
            "hand clockwise at a steady speed and stop at the new hour. Keep the clock face unchanged."
        )

    def check_difficulty(self, params, solution, difficulty):
        lo, hi = HOURS[difficulty]
        assert lo <= params["advance"] <= hi and 0 <= params["start_hour"] < 12

    def _video(self, meta, turn_degrees: float) -> np.ndarray:
        n = meta["num_frames"]
        base = Canvas(meta["resolution"])
        r = np.hypot(base.xs - CENTRE, base.ys - CENTRE)
        base.paint((r >= 14.5) & (r <= 15.5), "gray")
        for h in range(12):
            a = np.deg2rad(30 * h)
            base.rect(CENTRE + TICKS * np.sin(a) - 0.5, CENTRE - TICKS * np.cos(a) - 0.5, 1, 1, "black")
        start = 30 * meta["params"]["start_hour"]
        frames = []
        for t in range(n):
            cv = base.copy()
            cv.paint(hand_mask(cv, start + turn_degrees * progress(t, n)), "black")
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, 30 * meta["params"]["advance"])

    def wrong_video(self, sample: Sample) -> np.ndarray:
        k = sample.meta["params"]["advance"]
        return self._video(sample.meta, -30 * k if k % 6 else 30 * (k + 1))  # counter-clockwise, or one too far

    def score_frames(self, frames, meta) -> ScoreResult:
        cv = Canvas(meta["resolution"])
        black = palette.decode(frames) == palette.LABEL["black"]
        angles = [hand_angle(cv, b) for b in black]
        end = 30 * meta["solution"]["end_hour"]
        final = angles[-1]
        err = 180.0 if final is None else abs((final - end + 180) % 360 - 180)
        known = [a for a in angles if a is not None]
        steps = np.array([(b - a + 180) % 360 - 180 for a, b in itertools.pairwise(known)])
        moving = steps[np.abs(steps) > 1] if steps.size else steps
        total = float(np.abs(steps).sum()) if steps.size else 0.0
        subs = {
            "correct_hour": float(final is not None and round(final / 30) % 12 == meta["solution"]["end_hour"]),
            "angle": float(err <= 10),
            "clockwise": float((moving > 0).mean()) if moving.size else 0.0,
        }
        w = {"correct_hour": 0.6, "angle": 0.2, "clockwise": 0.2}
        success = subs["correct_hour"] == 1 and subs["angle"] == 1 and subs["clockwise"] == 1
        return weighted(subs, w, success=success, gate=total > 15)
