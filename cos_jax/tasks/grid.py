"""Helpers for tasks drawn on a grid of square blocks: per-block colour fractions and tree/grid paths."""

from __future__ import annotations

from collections import deque

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import LOGICAL, to_px


def block_fractions(labels: np.ndarray, res: int, x0: float, y0: float, block: float, rows: int, cols: int):
    """Fraction of each palette colour in every block: (..., rows, cols, n_colours) from (..., H, W) labels."""
    u = res / LOGICAL
    b = to_px(block, u) - to_px(0, u)
    px0, py0 = to_px(x0, u), to_px(y0, u)
    region = labels[..., py0 : py0 + rows * b, px0 : px0 + cols * b]
    lead = region.shape[:-2]
    region = region.reshape(*lead, rows, b, cols, b)
    onehot = region[..., None] == np.arange(len(palette.NAMES), dtype=np.int8)
    return onehot.mean(axis=(-4, -2))


def bfs(start, neighbours) -> dict:
    """Breadth-first distances from ``start`` over a neighbour function."""
    dist = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in neighbours(node):
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                queue.append(nxt)
    return dist


def bfs_path(start, goal, neighbours) -> list | None:
    """A shortest path (list of nodes) from start to goal, or None if unreachable. Ties break by
    neighbour order, so the result is deterministic."""
    prev = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            return path[::-1]
        for nxt in neighbours(node):
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    return None
