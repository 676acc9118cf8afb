"""The shared palette (RGB-cube corners + gray) and frame decoding by nearest palette colour."""

from __future__ import annotations

from functools import cache

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


def _nearest(rgb: np.ndarray) -> np.ndarray:
    """Nearest palette index of each (..., 3) colour, UNKNOWN beyond MAX_DISTANCE."""
    d2 = ((rgb.astype(np.float32)[..., None, :] - RGB) ** 2).sum(-1)
    idx = d2.argmin(-1)
    near = np.take_along_axis(d2, idx[..., None], -1)[..., 0] <= MAX_DISTANCE**2
    return np.where(near, idx, UNKNOWN).astype(np.int8)


@cache
def _lookup_table() -> np.ndarray:
    """Labels of all 2^24 RGB colours (16 MiB, built once per process), indexed by (r << 16) | (g << 8) | b."""
    levels = np.arange(256, dtype=np.int32)
    best = np.full((256, 256, 256), np.iinfo(np.int32).max, dtype=np.int32)
    table = np.full((256, 256, 256), UNKNOWN, dtype=np.int8)
    for k, (r, g, b) in enumerate(RGB.astype(np.int32)):
        d2 = ((levels - r) ** 2)[:, None, None] + ((levels - g) ** 2)[None, :, None] + ((levels - b) ** 2)[None, None]
        closer = d2 < best
        best[closer] = d2[closer]
        table[closer] = k
    table[best > MAX_DISTANCE**2] = UNKNOWN
    return table.reshape(-1)


def decode(frames: np.ndarray) -> np.ndarray:
    """Label every pixel with its nearest palette colour index (``UNKNOWN`` if farther than 100).

    ``frames``: uint8 array (..., 3). Returns int8 labels with the leading shape (exact, via a lookup table).
    """
    x = np.asarray(frames)
    if x.dtype != np.uint8 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB frames (..., 3), got {x.dtype} {x.shape}")
    code = (x[..., 0].astype(np.uint32) << 16) | (x[..., 1].astype(np.uint32) << 8) | x[..., 2]
    return _lookup_table()[code]


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


def toward(frames: np.ndarray, reference: np.ndarray, name: str) -> np.ndarray:
    """How far each pixel has moved from ``reference`` toward palette colour ``name``, in [0, 1].

    Linear in blends (a half-drawn mark reads 0.5), so it reads the superposed candidates of an x̂0 that
    `decode` maps to ``UNKNOWN``; 0 wherever the reference pixel is already near that colour.
    """
    target = RGB[LABEL[name]]
    ref = np.asarray(reference, dtype=np.float32)
    d = target - ref
    norm2 = (d * d).sum(-1)
    moved = ((np.asarray(frames, dtype=np.float32) - ref) * d).sum(-1)
    far = norm2 > MAX_DISTANCE**2
    return np.where(far, np.clip(moved / np.where(far, norm2, 1.0), 0.0, 1.0), 0.0)


def presence(frame: np.ndarray, name: str, problem: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel presence of colour ``name``: decoded 0/1 (the scorers' reading) without ``problem``;
    with the problem frame, the soft `toward` reading that also sees partial-strength blends."""
    if problem is None:
        return (decode(frame) == LABEL[name]).astype(np.float32)
    return toward(frame, problem, name)
