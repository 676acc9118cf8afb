"""The shared palette (RGB-cube corners + gray) and frame decoding by nearest palette colour."""

from __future__ import annotations

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "red": (230, 25, 25),
    "green": (25, 200, 25),
    "blue": (25, 25, 230),
    "yellow": (230, 230, 25),
    "magenta": (230, 25, 230),
    "cyan": (25, 230, 230),
    "gray": (128, 128, 128),
}
NAMES: tuple[str, ...] = tuple(COLOURS)
LABEL: dict[str, int] = {name: i for i, name in enumerate(NAMES)}
UNKNOWN = -1
RGB = np.array([COLOURS[n] for n in NAMES], dtype=np.float32)
#: colours used for objects (everything except background, walls and occluders)
OBJECT_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
MAX_DISTANCE = 100.0


def rgb(name: str) -> np.ndarray:
    """The uint8 RGB triple of a palette colour; raises with the valid names on a typo."""
    if name not in COLOURS:
        raise KeyError(f"unknown palette colour {name!r}; use one of {NAMES}")
    return np.array(COLOURS[name], dtype=np.uint8)


def decode(frames: np.ndarray) -> np.ndarray:
    """Label every pixel with its nearest palette colour index (``UNKNOWN`` if farther than 100).

    ``frames``: uint8 array (..., 3). Returns int8 labels with the leading shape.
    """
    x = np.asarray(frames, dtype=np.float32)
    d2 = ((x[..., None, :] - RGB) ** 2).sum(-1)
    idx = d2.argmin(-1)
    near = np.take_along_axis(d2, idx[..., None], -1)[..., 0] <= MAX_DISTANCE**2
    return np.where(near, idx, UNKNOWN).astype(np.int8)


def fraction(labels: np.ndarray, name: str, axis=None) -> np.ndarray | float:
    """Fraction of pixels labelled ``name`` (over ``axis``; all pixels when None)."""
    return (labels == LABEL[name]).mean(axis=axis)


def majority(labels: np.ndarray) -> tuple[int, float]:
    """The most common known label of a region and its fraction of the region (UNKNOWN, 0 if none)."""
    flat = labels.reshape(-1)
    known = flat[flat >= 0]
    if known.size == 0:
        return UNKNOWN, 0.0
    counts = np.bincount(known, minlength=len(NAMES))
    k = int(counts.argmax())
    return k, float(counts[k] / flat.size)
