"""Ball bounce: continue the ball's motion (shown by two faded earlier positions) with elastic bounces
off the box walls (VBVR O-15 ball_bounces_given_time)."""

from __future__ import annotations

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, progress, weighted

LO, HI, BALL, STEPS = 1.0, 29.0, 2.0, 12  # ball top-left range, ball size, motion steps
BOUNCES = {1: (1, 1), 2: (2, 2), 3: (3, 5)}
MIN_REBOUND = 4.0  # units between the true end and where a ball stuck at the wall would end
PIXEL_SLACK = 0.75  # units of centroid error allowed for rasterising half-unit positions
SPEEDS = (-3.0, -2.5, -2.0, -1.5, -1.0, 1.0, 1.5, 2.0, 2.5, 3.0)


def fold(v: np.ndarray) -> np.ndarray:
    """Positions of free motion folded into [LO, HI] (elastic reflection)."""
    span = HI - LO
    m = np.mod(np.asarray(v) - LO, 2 * span)
    return LO + np.where(m > span, 2 * span - m, m)


def crossings(x0: float, v: float, tau: float) -> int:
    """How many walls a coordinate hits over time [0, tau]."""
    span = HI - LO
    a, b = (x0 - LO) / span, (x0 - LO + v * tau) / span
    return int(abs(np.floor(b) - np.floor(a)))


def positions(params: dict, taus: np.ndarray) -> np.ndarray:
    """Ball top-left (x, y) at the given times."""
    x = fold(params["x0"] + params["vx"] * taus)
    y = fold(params["y0"] + params["vy"] * taus)
    return np.stack([x, y], -1)


class Bounce(Task):
    name = "bounce"
    category = "Knowledge"
    split = "id"
    vbvr = "O-15 ball_bounces_given_time (ID)"

    def sample_params(self, rng, difficulty):
        lo, hi = BOUNCES[difficulty]
        while True:
            p = {
                "x0": float(rng.integers(4, 26)),
                "y0": float(rng.integers(4, 26)),
                "vx": float(rng.choice(SPEEDS)),
                "vy": float(rng.choice(SPEEDS)),
            }
            n = crossings(p["x0"], p["vx"], STEPS) + crossings(p["y0"], p["vy"], STEPS)
            back = positions(p, np.array([-2.0, -1.0]))
            straight = np.allclose(
                back, [[p["x0"] - 2 * p["vx"], p["y0"] - 2 * p["vy"]], [p["x0"] - p["vx"], p["y0"] - p["vy"]]]
            )
            end = positions(p, np.array([float(STEPS)]))[0]
            stuck = np.clip([p["x0"] + p["vx"] * STEPS, p["y0"] + p["vy"] * STEPS], LO, HI)
            visible = np.linalg.norm(end - stuck) >= MIN_REBOUND  # the rebound is long enough to see
            if lo <= n <= hi and straight and visible:
                return p

    def solve(self, params):
        taus = np.arange(STEPS + 1, dtype=float)
        bounces = crossings(params["x0"], params["vx"], STEPS) + crossings(params["y0"], params["vy"], STEPS)
        return {"positions_per_step": positions(params, taus).tolist(), "bounces": bounces}

    def prompt(self, params):
        return (
            "A blue ball in a walled box. The two faint cyan dots show where the ball was one and two time steps "
            f"ago. Continue its motion for {STEPS} more time steps at the same speed, bouncing elastically off "
            "the walls (angle in equals angle out), then stop."
        )

    def check_difficulty(self, params, solution, difficulty):
        lo, hi = BOUNCES[difficulty]
        assert lo <= solution["bounces"] <= hi
        stuck = np.clip([params["x0"] + params["vx"] * STEPS, params["y0"] + params["vy"] * STEPS], LO, HI)
        assert np.linalg.norm(np.array(solution["positions_per_step"][-1]) - stuck) >= MIN_REBOUND

    def _frame_taus(self, n: int) -> np.ndarray:
        return np.array([progress(t, n) * STEPS for t in range(n)])

    def _video(self, meta, track: np.ndarray) -> np.ndarray:
        p = meta["params"]
        base = Canvas(meta["resolution"])
        for x, y, w, h in ((0, 0, 32, 1), (0, 31, 32, 1), (0, 0, 1, 32), (31, 0, 1, 32)):
            base.rect(x, y, w, h, "black")
        frames = []
        for t, (x, y) in enumerate(track):
            cv = base.copy()
            if t == 0:
                for gx, gy in positions(p, np.array([-2.0, -1.0])):
                    cv.rect(gx + 0.5, gy + 0.5, 1, 1, "cyan")
            cv.rect(x, y, BALL, BALL, "blue")
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, positions(meta["params"], self._frame_taus(meta["num_frames"])))

    def wrong_video(self, sample: Sample) -> np.ndarray:
        p = sample.meta["params"]
        taus = self._frame_taus(sample.meta["num_frames"])
        free = np.stack([p["x0"] + p["vx"] * taus, p["y0"] + p["vy"] * taus], -1)
        return self._video(sample.meta, np.clip(free, LO, HI))  # the ball stops at the wall instead of bouncing

    def score_frames(self, frames, meta) -> ScoreResult:
        res, n = meta["resolution"], meta["num_frames"]
        cv = Canvas(res)
        blue = palette.decode(frames) == palette.LABEL["blue"]
        want = positions(meta["params"], self._frame_taus(n)) + BALL / 2
        got = np.array([[cv.xs[m].mean(), cv.ys[m].mean()] if m.any() else [np.nan, np.nan] for m in blue])
        err = np.linalg.norm(got - want, axis=1)
        err = np.where(np.isnan(err), 16.0, err)

        def reversals(track):
            d = np.diff(track, axis=0)
            d = np.where(np.abs(d) < 0.25, 0, np.sign(d))
            return sum(int(((a[1:] * a[:-1]) < 0).sum()) for a in (d[:, 0][d[:, 0] != 0], d[:, 1][d[:, 1] != 0]))

        # bounces are counted on the track as this resolution rasterises it, so pixel rounding cancels out
        u = res / 32
        top_left = positions(meta["params"], self._frame_taus(n))
        drawn = (np.floor(top_left * u + 0.5) + np.floor((top_left + BALL) * u + 0.5)) / (2 * u)
        expected = reversals(drawn)
        found = reversals(np.nan_to_num(got, nan=0.0))
        moved = not np.isnan(got[[0, -1]]).any() and np.linalg.norm(got[-1] - got[0]) > 1
        subs = {
            "trajectory": max(0.0, 1 - np.maximum(err - PIXEL_SLACK, 0).mean() / 4),
            "final": float(err[-1] <= 1.5),
            "bounces": max(0.0, 1 - abs(found - expected) / max(expected, 1)),
        }
        w = {"trajectory": 0.5, "final": 0.3, "bounces": 0.2}
        success = err[-1] <= 1.5 and err.mean() <= 1.0 and found == expected
        return weighted(subs, w, success=success, gate=moved)
