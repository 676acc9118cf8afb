"""Helpers for tasks drawn on a grid of square blocks: per-block colour fractions and tree/grid paths."""

from __future__ import annotations

from collections import deque

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import LOGICAL, to_px


def _blocks(values: np.ndarray, res: int, x0: float, y0: float, block: float, rows: int, cols: int) -> np.ndarray:
    """(..., H, W, *rest) → (..., rows, b, cols, b, *rest): the pixels of each block of a unit grid."""
    u = res / LOGICAL
    b = to_px(block, u) - to_px(0, u)
    px0, py0 = to_px(x0, u), to_px(y0, u)
    region = values[..., py0 : py0 + rows * b, px0 : px0 + cols * b]
    return region.reshape(*region.shape[:-2], rows, b, cols, b)


def block_fractions(labels: np.ndarray, res: int, x0: float, y0: float, block: float, rows: int, cols: int):
    """Fraction of each palette colour in every block: (..., rows, cols, n_colours) from (..., H, W) labels."""
    region = _blocks(labels, res, x0, y0, block, rows, cols)
    onehot = region[..., None] == np.arange(len(palette.NAMES), dtype=np.int8)
    return onehot.mean(axis=(-4, -2))


def block_means(values: np.ndarray, res: int, x0: float, y0: float, block: float, rows: int, cols: int):
    """Mean of a per-pixel map in every block: (..., rows, cols) from (..., H, W)."""
    return _blocks(values, res, x0, y0, block, rows, cols).mean(axis=(-3, -1))


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
