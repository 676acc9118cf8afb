"""Figures people would rather look at than read: x̂0 step × frame grids and candidate activations."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np


def step_frame_grid(
    x0_videos: np.ndarray, steps: Sequence[int], frames: Sequence[int], scale: int = 3, gap: int = 2
) -> np.ndarray:
    """uint8 image: rows = denoising steps, columns = frames of the decoded x̂0 ([S, T, H, W, 3] input)."""
    h, w = x0_videos.shape[2:4]
    cell_h, cell_w = h * scale + gap, w * scale + gap
    grid = np.full((len(steps) * cell_h + gap, len(frames) * cell_w + gap, 3), 40, np.uint8)
    for r, step in enumerate(steps):
        for c, frame in enumerate(frames):
            tile = x0_videos[step, frame].repeat(scale, 0).repeat(scale, 1)
            grid[gap + r * cell_h : gap + r * cell_h + h * scale, gap + c * cell_w : gap + c * cell_w + w * scale] = (
                tile
            )
    return grid


def save_grid_figure(path: str | Path, grid: np.ndarray, steps: Sequence[int], frames: Sequence[int], title: str):
    """The grid with step and frame labels, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = len(steps), len(frames)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * cols, 0.6 + 0.9 * rows))
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([(c + 0.5) * grid.shape[1] / cols for c in range(cols)], [str(f) for f in frames], fontsize=7)
    ax.set_yticks([(r + 0.5) * grid.shape[0] / rows for r in range(rows)], [str(s) for s in steps], fontsize=7)
    ax.set_xlabel("frame")
    ax.set_ylabel("denoising step (x̂0)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_activation_figure(path: str | Path, activations: np.ndarray, correct: Collection[int], title: str):
    """Per-candidate activation across denoising steps (breadth, then commitment); right answers drawn bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = np.asarray(activations)
    fig, ax = plt.subplots(figsize=(5, 3))
    for k in range(a.shape[1]):
        ax.plot(
            a[:, k], lw=2.5 if k in correct else 1.2, label=f"candidate {k}" + (" (correct)" if k in correct else "")
        )
    ax.set(xlabel="denoising step", ylabel="activation in x̂0", ylim=(-0.02, 1.02), title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_panel_grid(
    path: str | Path,
    panels: Sequence[Sequence[np.ndarray]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    shared_scale: bool = True,
) -> Path:
    """A rows × columns grid of small images: 2-d arrays (viridis; one colour scale per row when
    `shared_scale`) or RGB arrays [h, w, 3] in [0, 1]; written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cos_jax.analysis.report import _save_figure

    rows, cols = len(panels), max(len(r) for r in panels)
    fig, axes = plt.subplots(rows, cols, figsize=(0.6 + 1.1 * cols, 0.5 + 1.1 * rows), squeeze=False)
    for r, row in enumerate(panels):
        flat = [p for p in row if p.ndim == 2]
        lo = min(float(p.min()) for p in flat) if flat and shared_scale else None
        hi = max(float(p.max()) for p in flat) if flat and shared_scale else None
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(row):
                image = row[c]
                ax.imshow(np.clip(image, 0, 1) if image.ndim == 3 else image, vmin=lo, vmax=hi,
                          cmap=None if image.ndim == 3 else "viridis", interpolation="nearest")  # fmt: skip
            else:
                ax.axis("off")
            if r == 0 and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=7)
        axes[r, 0].set_ylabel(row_labels[r], fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)
