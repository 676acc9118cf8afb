"""Ordered waypoints: walk the yellow agent over the coloured waypoints in the order of the legend, then
to the red goal, by the shortest legal route (VBVR G-13 grid_number_sequence, G-16)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, active_frames, progress, weighted
from cos_jax.tasks.grid import bfs_path, block_fractions

COLS, ROWS, CELL, TOP = 8, 7, 4.0, 4.0
MAX_MOVES = {1: 8, 2: 12, 3: 18}
WAYPOINT_COLOURS = ("blue", "magenta", "cyan")
G = palette.LABEL


def neighbours_fn(blocked: set):
    def nb(cell):
        r, c = cell
        for a, b in ((r, c + 1), (r + 1, c), (r, c - 1), (r - 1, c)):
            if 0 <= a < ROWS and 0 <= b < COLS and (a, b) not in blocked:
                yield (a, b)

    return nb


def plan(params: dict, order: list[int]) -> list[list] | None:
    """Shortest segments start → waypoints (in ``order``) → goal; a segment never steps on another target."""
    obstacles = {tuple(o) for o in params["obstacles"]}
    targets = [tuple(params["waypoints"][i]) for i in order] + [tuple(params["goal"])]
    skipped = {tuple(w) for i, w in enumerate(params["waypoints"]) if i not in order}
    segments, here = [], tuple(params["start"])
    for k, target in enumerate(targets):
        others = {t for j, t in enumerate(targets) if j > k} | skipped
        seg = bfs_path(here, target, neighbours_fn(obstacles | others))
        if seg is None:
            return None
        segments.append([list(c) for c in seg])
        here = target
    return segments


def cell_rect(cell) -> tuple[float, float, float, float]:
    r, c = cell
    return c * CELL, TOP + r * CELL, CELL, CELL


class Waypoints(Task):
    name = "waypoints"
    category = "Spatiality"
    split = "ood"
    vbvr = "G-13 grid_number_sequence, G-16 grid_go_through_block (ID)"

    def sample_params(self, rng, difficulty):
        k = difficulty
        while True:
            cells = [divmod(int(i), COLS) for i in rng.permutation(ROWS * COLS)[: 2 + k + 4 + 2 * difficulty]]
            start, goal, wps, obstacles = cells[0], cells[1], cells[2 : 2 + k], cells[2 + k :]
            params = {
                "start": list(start),
                "goal": list(goal),
                "waypoints": [list(w) for w in wps],
                "colours": list(rng.permutation(WAYPOINT_COLOURS)[:k]),
                "obstacles": sorted(list(o) for o in obstacles),
            }
            segs = plan(params, list(range(k)))
            if segs and k + 1 <= sum(len(s) - 1 for s in segs) <= MAX_MOVES[difficulty]:
                return params

    def solve(self, params):
        segs = plan(params, list(range(len(params["waypoints"]))))
        return {"segments": segs, "length": sum(len(s) - 1 for s in segs)}

    def prompt(self, params):
        return (
            "A grid with black obstacles, a yellow agent, coloured waypoint cells and a red goal. The legend in "
            "the top strip gives the order: visit the waypoints in the legend's order from left to right, then "
            "the red goal. Move one cell at a time, never onto an obstacle or a waypoint out of order, by the "
            "shortest route. A visited waypoint turns white. Keep everything else unchanged."
        )

    def check_difficulty(self, params, solution, difficulty):
        assert len(params["waypoints"]) == difficulty
        assert len(params["waypoints"]) + 1 <= solution["length"] <= MAX_MOVES[difficulty]

    def _video(self, meta, segments: list, order: list[int]) -> np.ndarray:
        p, n = meta["params"], meta["num_frames"]
        active = active_frames(n)
        ends = [math.floor((j + 1) * active / len(segments) + 0.5) for j in range(len(segments))]
        frames = []
        for t in range(n):
            cv = Canvas(meta["resolution"])
            for j, colour in enumerate([*p["colours"], "red"]):
                cv.rect(1 + 4 * j, 0.5, 3, 3, colour)
            for o in p["obstacles"]:
                cv.rect(*cell_rect(o), "black")
            cv.rect(*cell_rect(p["goal"]), "red")
            step = min(t, active)
            seg_i = next(j for j, e in enumerate(ends) if step <= e)
            begin = ends[seg_i - 1] if seg_i else 0
            frac = (step - begin) / max(ends[seg_i] - begin, 1)
            seg = segments[seg_i]
            pos = seg[math.floor(frac * (len(seg) - 1) + 0.5)]
            done = set(order[: seg_i + (pos == seg[-1])]) if progress(t, n) > 0 else set()
            for i, w in enumerate(p["waypoints"]):
                cv.rect(*cell_rect(w), "white" if i in done else p["colours"][i])
            cv.rect(*cell_rect(pos), "yellow")
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, meta["solution"]["segments"], list(range(len(meta["params"]["waypoints"]))))

    def wrong_video(self, sample: Sample) -> np.ndarray:
        k = len(sample.meta["params"]["waypoints"])
        for order in ([1, 0, *range(2, k)] if k > 1 else [], list(range(k))[::-1], []):
            segs = plan(sample.meta["params"], order)
            if segs is not None and order != list(range(k)):
                return self._video(sample.meta, segs, order)
        # every other order is blocked: stop on the last waypoint, short of the goal
        return self._video(sample.meta, sample.meta["solution"]["segments"][:-1], list(range(k)))

    def score_frames(self, frames, meta) -> ScoreResult:
        p, sol = meta["params"], meta["solution"]
        f = block_fractions(palette.decode(frames), meta["resolution"], 0, TOP, CELL, ROWS, COLS)
        yellow = f[..., G["yellow"]]
        agents = [divmod(int(y.argmax()), COLS) if y.max() >= 0.3 else None for y in yellow]
        moved = len({a for a in agents if a is not None}) > 1
        # a waypoint is visited at the first frame its colour is gone (agent on it or turned white)
        visit = []
        for i, (r, c) in enumerate(p["waypoints"]):
            gone = np.flatnonzero(f[:, r, c, G[p["colours"][i]]] < 0.5)
            visit.append(int(gone[0]) if gone.size else None)
        prefix = 0
        for i in range(len(visit)):
            earlier = [v for v in visit[:i] if v is not None]
            if (
                visit[i] is None
                or any(visit[i] < v for v in earlier)
                or any(v is not None and v < visit[i] for v in visit[i + 1 :])
            ):
                break
            prefix += 1
        max_jump = max(len(s) - 1 for s in sol["segments"]) * 2
        obstacles = {tuple(o) for o in p["obstacles"]}
        steps = legal = taken = 0
        for a, b in itertools.pairwise(agents):
            if a is None or b is None or a == b:
                continue
            d = abs(a[0] - b[0]) + abs(a[1] - b[1])
            steps, taken = steps + 1, taken + d
            legal += d <= max_jump and b not in obstacles
        complete = agents[-1] == tuple(p["goal"]) and prefix == len(visit)
        last = f[-1]
        kept = [last[r, c, G["black"]] >= 0.5 for r, c in p["obstacles"]]
        subs = {
            "order": prefix / len(visit),
            "legality": legal / steps if steps else 0.0,
            "completion": float(complete),
            "optimality": sol["length"] / taken if complete and taken else 0.0,
            "preservation": float(np.mean(kept)),
        }
        w = {"order": 0.35, "legality": 0.20, "completion": 0.25, "optimality": 0.10, "preservation": 0.10}
        success = complete and subs["legality"] == 1.0 and subs["preservation"] == 1.0
        return weighted(subs, w, success=success, gate=moved and subs["preservation"] >= 0.8)
