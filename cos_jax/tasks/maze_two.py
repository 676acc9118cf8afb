"""A maze with exactly two shortest routes of equal length from the agent to the goal; either one is a
correct answer. The paper's headline picture (Fig. 1, Fig. 2(a)): early x̂0 may hold both routes, which
later steps prune to one. Training videos draw one route per sample, uniformly from the seed."""

from __future__ import annotations

import numpy as np

from cos_jax.tasks.base import ScoreResult, Task
from cos_jax.tasks.grid import bfs
from cos_jax.tasks.maze import CELLS, PATH_RANGE, Maze, carve, neighbours_fn, route_blocks


def open_wall(lattice: list[str], cell: tuple[int, int], other: tuple[int, int]) -> list[str]:
    """The lattice with the wall between two adjacent cells removed."""
    (r, c), (a, b) = cell, other
    rows = [list(row) for row in lattice]
    rows[r + a + 1][c + b + 1] = "1"
    return ["".join(row) for row in rows]


def shortest_routes(lattice: list[str], start: tuple[int, int], goal: tuple[int, int]) -> list[list]:
    """Every shortest cell path from start to goal, sorted."""
    nb = neighbours_fn(lattice)
    dist = bfs(start, nb)

    def back(cell):
        if cell == start:
            return [[start]]
        return [[*p, cell] for prev in nb(cell) if dist.get(prev) == dist[cell] - 1 for p in back(prev)]

    return sorted(back(goal))


def _closed_walls(lattice: list[str], n: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    walls = []
    for r in range(n):
        for c in range(n):
            for a, b in ((r, c + 1), (r + 1, c)):
                if a < n and b < n and lattice[r + a + 1][c + b + 1] == "0":
                    walls.append(((r, c), (a, b)))
    return walls


class MazeTwo(Maze):
    """`maze` with one wall of a perfect maze opened so that exactly two shortest routes reach the goal."""

    name = "maze_two"
    vbvr = "none (two valid routes: the multi-path exploration probe of the paper's Fig. 1)"
    pair_params = Task.pair_params  # maze's other-goal pairs would not keep two routes: no pairs

    def sample_params(self, rng, difficulty):
        n = CELLS[difficulty]
        lo, hi = PATH_RANGE[difficulty]
        while True:
            perfect = carve(n, rng)
            walls = _closed_walls(perfect, n)
            lattice = open_wall(perfect, *walls[int(rng.integers(len(walls)))])
            start = (int(rng.integers(n)), int(rng.integers(n)))
            nb = neighbours_fn(lattice)
            dist = bfs(start, nb)
            goals = [
                c for c, d in sorted(dist.items()) if lo <= d <= hi and len(shortest_routes(lattice, start, c)) == 2
            ]
            if not goals:
                continue
            goal = goals[int(rng.integers(len(goals)))]
            if any(c not in (start, goal) and len(list(nb(c))) == 1 for c in dist):  # a dead end for wrong answers
                return {"cells": n, "lattice": lattice, "start": list(start), "goal": list(goal)}

    def solve(self, params):
        routes = shortest_routes(params["lattice"], tuple(params["start"]), tuple(params["goal"]))
        return {"routes": [[list(c) for c in r] for r in routes], "length": len(routes[0]) - 1}

    def prompt(self, params):
        return (
            "A maze of black walls and white corridors with two equally short routes to the red block. Move the "
            "green block through the corridors, one cell at a time and never through a wall, along one shortest "
            "route to the red block. Leave a yellow trail on every corridor block you pass. Keep the walls "
            "unchanged and the camera fixed."
        )

    def check_difficulty(self, params, solution, difficulty):
        super().check_difficulty(params, solution, difficulty)
        assert len(solution["routes"]) == 2 and solution["routes"][0] != solution["routes"][1]

    def drawn_route(self, meta) -> list:
        """The route the ground-truth video takes: one of the two drawn uniformly from the seed."""
        routes = meta["solution"]["routes"]
        return routes[int(np.random.default_rng(meta["seed"]).integers(len(routes)))]

    def render(self, meta):
        return self._video(meta, [tuple(c) for c in self.drawn_route(meta)])

    def _as_maze(self, meta, route) -> dict:
        return {**meta, "solution": {"path": route, "length": meta["solution"]["length"]}}

    def _candidates(self, meta) -> list[list[tuple[int, int]]]:
        """Route A's and route B's own blocks (those the other route lacks), then the dead ends' detours
        off both routes."""
        routes = [route_blocks([tuple(c) for c in r]) for r in meta["solution"]["routes"]]
        own = [[b for b in routes[0] if b not in routes[1]], [b for b in routes[1] if b not in routes[0]]]
        on_routes = set(routes[0]) | set(routes[1])
        dead_ends = super()._candidates(self._as_maze(meta, meta["solution"]["routes"][0]))[1:]
        return own + [[b for b in d if b not in on_routes] for d in dead_ends]

    def correct_candidates(self, meta):
        return (0, 1)

    def score_frames(self, frames, meta) -> ScoreResult:
        """The better of the scores against each route: either route, followed cleanly, succeeds."""
        results = [
            super(MazeTwo, self).score_frames(frames, self._as_maze(meta, r)) for r in meta["solution"]["routes"]
        ]
        return max(results, key=lambda r: (r.success, r.score))
