"""Maze navigation: move the green agent along the corridors to the red goal, leaving a yellow trail
(VBVR O-39 maze, G-18 grid_shortest_path)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import LOGICAL, Canvas, Sample, ScoreResult, Task, active_frames, progress, weighted
from cos_jax.tasks.grid import bfs, bfs_path, block_fractions, block_means

CELLS = {1: 4, 2: 5, 3: 7}  # maze cells per side
PATH_RANGE = {1: (2, 6), 2: (4, 12), 3: (13, 24)}  # shortest-path moves (difficulty 3: beyond training)
ON = 0.5
G = palette.LABEL


def geometry(n: int) -> tuple[int, int, int]:
    """Lattice size L = 2n+1 blocks, block size and origin in units."""
    lattice = 2 * n + 1
    block = min(3, LOGICAL // lattice)
    return lattice, block, (32 - lattice * block) // 2


def carve(n: int, rng: np.random.Generator) -> list[str]:
    """A perfect maze by randomised depth-first search; returns lattice rows, '1' = open."""
    lat = np.zeros((2 * n + 1, 2 * n + 1), dtype=int)
    stack, seen = [(0, 0)], {(0, 0)}
    lat[1, 1] = 1
    while stack:
        r, c = stack[-1]
        nxt = [(r + dr, c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))]
        nxt = [(a, b) for a, b in nxt if 0 <= a < n and 0 <= b < n and (a, b) not in seen]
        if not nxt:
            stack.pop()
            continue
        a, b = nxt[int(rng.integers(len(nxt)))]
        lat[2 * a + 1, 2 * b + 1] = lat[r + a + 1, c + b + 1] = 1
        seen.add((a, b))
        stack.append((a, b))
    return ["".join(map(str, row)) for row in lat]


def neighbours_fn(lattice: list[str]):
    n = (len(lattice) - 1) // 2

    def nb(cell):
        r, c = cell
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            a, b = r + dr, c + dc
            if 0 <= a < n and 0 <= b < n and lattice[r + a + 1][c + b + 1] == "1":
                yield (a, b)

    return nb


AGENT_ON = 0.3  # share of a cell block in the agent's green that counts as the agent standing there


def cell_green(fractions: np.ndarray) -> np.ndarray:
    """The green share of every cell block (corridor and wall blocks left out): (T, cells, cells) of block
    `fractions` (T, L, L, colours)."""
    return fractions[:, 1::2, 1::2, G["green"]]


def agent_cells(fractions: np.ndarray, cells: int) -> list[tuple[int, int] | None]:
    """The agent's cell in every frame of block `fractions` (T, L, L, colours): the greenest cell block, or
    None where none is green enough."""
    return [divmod(int(g.argmax()), cells) if g.max() >= AGENT_ON else None for g in cell_green(fractions)]


def drawn_trail(last: np.ndarray) -> np.ndarray:
    """Blocks of one frame's fractions (L, L, colours) drawn as trail or agent: bool (L, L)."""
    return (last[..., G["yellow"]] >= ON) | (last[..., G["green"]] >= ON)


def route_blocks(path: list) -> list[tuple[int, int]]:
    """Lattice blocks covered by a cell path (cells and the corridor blocks between them)."""
    out = [(2 * path[0][0] + 1, 2 * path[0][1] + 1)]
    for (r, c), (a, b) in itertools.pairwise(path):
        out += [(r + a + 1, c + b + 1), (2 * a + 1, 2 * b + 1)]
    return out


class Maze(Task):
    name = "maze"
    category = "Spatiality"
    split = "id"
    vbvr = "O-39 maze (OOD), G-18 grid_shortest_path (ID)"
    multiple_choice = True  # candidates: the goal and every dead end

    def sample_params(self, rng, difficulty):
        n = CELLS[difficulty]
        lo, hi = PATH_RANGE[difficulty]
        while True:
            lattice = carve(n, rng)
            start = (int(rng.integers(n)), int(rng.integers(n)))
            dist = bfs(start, neighbours_fn(lattice))
            goals = sorted(c for c, d in dist.items() if lo <= d <= hi)
            if goals:
                goal = goals[int(rng.integers(len(goals)))]
                return {"cells": n, "lattice": lattice, "start": list(start), "goal": list(goal)}

    def solve(self, params):
        path = bfs_path(tuple(params["start"]), tuple(params["goal"]), neighbours_fn(params["lattice"]))
        return {"path": [list(p) for p in path], "length": len(path) - 1}

    def prompt(self, params):
        return (
            "A maze of black walls and white corridors. Move the green block through the corridors, one cell "
            "at a time and never through a wall, along the shortest route to the red block. Leave a yellow "
            "trail on every corridor block you pass. Keep the walls unchanged and the camera fixed."
        )

    def pair_params(self, params, rng, difficulty):
        """B: the same maze and start with another goal at a path length of the same difficulty, neither goal
        on the other's route."""
        nb = neighbours_fn(params["lattice"])
        start, goal = tuple(params["start"]), tuple(params["goal"])
        lo, hi = PATH_RANGE[difficulty]
        route_a = set(bfs_path(start, goal, nb))
        options = [c for c, d in sorted(bfs(start, nb).items())
                   if lo <= d <= hi and c not in route_a and goal not in bfs_path(start, c, nb)]  # fmt: skip
        if not options:
            return None
        return {**params, "goal": list(options[int(rng.integers(len(options)))])}

    def cross_meta(self, problem, answer):
        """A's maze and start, scored against B's goal and route (the scorer reads the goal from params)."""
        return {**problem, "params": {**problem["params"], "goal": answer["params"]["goal"]},
                "solution": answer["solution"]}  # fmt: skip

    def check_difficulty(self, params, solution, difficulty):
        lo, hi = PATH_RANGE[difficulty]
        assert params["cells"] == CELLS[difficulty] and lo <= solution["length"] <= hi

    def _video(self, meta, path: list) -> np.ndarray:
        p, n = meta["params"], meta["num_frames"]
        _lat, block, origin = geometry(p["cells"])
        base = Canvas(meta["resolution"])
        for i, row in enumerate(p["lattice"]):
            for j, v in enumerate(row):
                if v == "0":
                    base.rect(origin + j * block, origin + i * block, block, block, "black")
        gr, gc = p["goal"]
        base.rect(origin + (2 * gc + 1) * block, origin + (2 * gr + 1) * block, block, block, "red")
        blocks = route_blocks(path)
        frames = []
        for t in range(n):
            cv = base.copy()
            m = math.floor(progress(t, n) * (len(path) - 1) + 0.5)
            for i, j in blocks[: 2 * m]:
                cv.rect(origin + j * block, origin + i * block, block, block, "yellow")
            r, c = path[m]
            cv.rect(origin + (2 * c + 1) * block, origin + (2 * r + 1) * block, block, block, "green")
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, [tuple(c) for c in meta["solution"]["path"]])

    def _candidates(self, meta) -> list[list[tuple[int, int]]]:
        """Lattice blocks read for each candidate: the solution route first, then, for each dead end, the
        blocks of its detour that no other dead end's detour shares (so nested dead ends do not overlap)."""
        p = meta["params"]
        nb = neighbours_fn(p["lattice"])
        start, goal = tuple(p["start"]), tuple(p["goal"])
        solution = route_blocks([tuple(c) for c in meta["solution"]["path"]])
        on_route = set(solution)
        ends = [c for c in sorted(bfs(start, nb)) if c not in (start, goal) and len(list(nb(c))) == 1]
        detours = [[b for b in route_blocks(bfs_path(start, c, nb)) if b not in on_route] for c in ends]
        uses: dict[tuple[int, int], int] = {}
        for d in detours:
            for b in d:
                uses[b] = uses.get(b, 0) + 1
        return [solution[1:]] + [[b for b in d if uses[b] == 1] for d in detours]

    def wrong_video(self, sample: Sample) -> np.ndarray:
        p = sample.meta["params"]
        nb = neighbours_fn(p["lattice"])
        start, goal = tuple(p["start"]), tuple(p["goal"])
        ends = [c for c in sorted(bfs(start, nb)) if c not in (start, goal) and len(list(nb(c))) == 1]
        end = ends[sample.meta["seed"] % len(ends)]
        return self._video(sample.meta, bfs_path(start, end, nb))

    def fractions(self, frames, meta):
        """Colour fractions of every lattice block: (T, L, L, colours) for frames (T, H, W, 3)."""
        lat, block, origin = geometry(meta["params"]["cells"])
        return block_fractions(palette.decode(frames), meta["resolution"], origin, origin, block, lat, lat)

    def candidate_activations(self, frames, meta, problem=None):
        if problem is not None:  # how far each block moved toward trail or agent colour
            lat, block, origin = geometry(meta["params"]["cells"])
            trail = np.maximum(*(palette.presence(frames[-1], c, problem) for c in ("yellow", "green")))
            marked = block_means(trail, meta["resolution"], origin, origin, block, lat, lat)
        else:
            f = self.fractions(frames[-1], meta)
            marked = (f[..., G["yellow"]] + f[..., G["green"]]) >= ON
        return np.array([np.mean([marked[b] for b in c]) if c else 0.0 for c in self._candidates(meta)])

    def correct_candidates(self, meta):
        return (0,)

    def score_frames(self, frames, meta) -> ScoreResult:
        p, sol = meta["params"], meta["solution"]
        n = p["cells"]
        nb = neighbours_fn(p["lattice"])
        f = self.fractions(frames, meta)  # (T, L, L, colours)
        agents = agent_cells(f, n)
        goal, _start = tuple(p["goal"]), tuple(p["start"])
        dist_goal = bfs(goal, nb)
        seen = [a for a in agents if a is not None]
        moved = len(set(seen)) > 1
        final = agents[-1]
        reached = final == goal
        completion = 1.0 if reached else (0.0 if final is None else max(0.0, 1 - dist_goal[final] / sol["length"]))
        walls = np.array([[v == "0" for v in row] for row in p["lattice"]])
        last = f[-1]
        trail = drawn_trail(last)
        clean_trail = not (trail & walls).any()
        max_jump = max(1, math.ceil(2 * sol["length"] / active_frames(meta["num_frames"])))  # twice the GT pace
        steps, valid, taken = 0, 0, 0
        for a, b in itertools.pairwise(agents):
            if a is None or b is None or a == b:
                continue
            d = bfs(a, nb)[b]
            steps, valid, taken = steps + 1, valid + (d <= max_jump), taken + d
        validity = (valid / steps if steps else 0.0) * clean_trail
        black = last[..., G["black"]] >= ON
        iou = (black & walls).sum() / max((black | walls).sum(), 1)
        route = np.zeros_like(walls)
        for b in route_blocks([tuple(c) for c in sol["path"]]):
            route[b] = True
        subs = {
            "completion": completion,
            "validity": validity,
            "optimality": sol["length"] / taken if reached and taken else 0.0,
            "preservation": float(iou >= 0.95),
            "single_agent": float(np.mean([(g >= AGENT_ON).sum() == 1 for g in cell_green(f)])),
        }
        w = {"completion": 0.35, "validity": 0.30, "optimality": 0.15, "preservation": 0.10, "single_agent": 0.10}
        success = reached and validity == 1.0 and bool((trail == route).all())
        return weighted(subs, w, success=success, gate=moved and iou >= 0.8)
