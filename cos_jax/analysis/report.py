"""Self-contained reports (one HTML file with inlined figures, or markdown plus PNGs) and the figures for them.

All files are written atomically: to a temporary file in the destination folder, then moved into place.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cos_jax.arrays_io import atomic_write

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 68rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d1d1f; line-height: 1.5; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
caption, figcaption { caption-side: bottom; color: #555; font-size: .85rem; padding-top: .3rem; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; }
pre { background: #f6f8fa; padding: .7rem; overflow-x: auto; font-size: .85rem; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; font-family: monospace; white-space: pre-wrap; }
""".strip()


@dataclass
class Figure:
    """A PNG image: read from `path`, or given as `png` bytes (which take precedence)."""

    path: Path | None = None
    png: bytes | None = None
    caption: str = ""


@dataclass
class Table:
    """Rows of cells under a header; floats are shown to 4 significant digits."""

    header: list[str]
    rows: list[list]
    caption: str = ""


@dataclass
class Section:
    """A titled block: paragraphs, then tables, figures and code blocks, in that order."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    code: list[str] = field(default_factory=list)


def signed_interval(ci: Sequence[float]) -> str:
    """A paired difference and its interval, signed: `+0.140 [+0.080, +0.220]`."""
    return f"{ci[0]:+.3f} [{ci[1]:+.3f}, {ci[2]:+.3f}]"


def _atomic_write(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _cell(v: Any) -> str:
    """Text of one table cell: floats to 4 significant digits, None empty."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    return str(v)


def _check_table(table: Table) -> None:
    for r, row in enumerate(table.rows):
        if len(row) != len(table.header):
            raise ValueError(f"table row {r} has {len(row)} cells but the header has {len(table.header)}")


def _png_bytes(fig: Figure) -> bytes:
    if fig.png is not None:
        return fig.png
    if fig.path is None:
        raise ValueError("a Figure needs a path or png bytes")
    return Path(fig.path).read_bytes()


def _meta_value(v: Any) -> str:
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, indent=2, default=str)
    return _cell(v)


def _html_table(table: Table) -> str:
    _check_table(table)
    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{esc(_cell(c))}</td>" for c in row) + "</tr>\n" for row in table.rows)
    caption = f"<caption>{esc(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>"


def write_html(path: str | Path, title: str, sections: list[Section], meta: dict | None = None) -> Path:
    """Write the report as one self-contained HTML file (figures inlined as base64 PNG) and return its path.

    `meta` (config, model, command, sample counts, ...) is shown first as a definition list; dict and list values
    are rendered as JSON, folded (<details>). All text is HTML-escaped, so paragraphs are plain text, not markup.
    """
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>\n{_CSS}\n</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if meta:

        def item(k, v) -> str:
            value = esc(_meta_value(v))
            if isinstance(v, dict | list | tuple):
                value = f"<details><summary>{len(v)} entries</summary>{value}</details>"
            return f"<dt>{esc(str(k))}</dt><dd>{value}</dd>\n"

        items = "".join(item(k, v) for k, v in meta.items())
        parts.append(f'<dl class="meta">\n{items}</dl>')
    if len(sections) > 1:
        links = "".join(f'<li><a href="#s{i}">{esc(s.title)}</a></li>' for i, s in enumerate(sections))
        parts.append(f"<nav><ol>{links}</ol></nav>")
    for i, section in enumerate(sections):
        parts.append(f'<section id="s{i}"><h2>{esc(section.title)}</h2>')
        parts += [f"<p>{esc(p)}</p>" for p in section.paragraphs]
        parts += [_html_table(t) for t in section.tables]
        for fig in section.figures:
            data = base64.b64encode(_png_bytes(fig)).decode("ascii")
            caption = f"<figcaption>{esc(fig.caption)}</figcaption>" if fig.caption else ""
            alt = esc(fig.caption or section.title, quote=True)
            parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{caption}</figure>')
        parts += [f"<pre><code>{esc(c)}</code></pre>" for c in section.code]
        parts.append("</section>")
    parts.append("</body></html>\n")
    return _atomic_write(path, "\n".join(parts).encode("utf-8"))


def _md_cell(v: Any) -> str:
    return _cell(v).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run inside `text`."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def write_markdown(
    path: str | Path,
    title: str,
    sections: list[Section],
    meta: dict | None = None,
    figure_dir: str | Path | None = None,
) -> Path:
    """Write the report as markdown and return its path; figures are linked by path relative to the file.

    Figures given as `png` bytes are written to `figure_dir` (default: `<stem>_figures/` next to the markdown) as
    `s<section>_f<figure>.png`; figures given by `path` are linked where they are.
    """
    path = Path(path)
    fig_dir = Path(figure_dir) if figure_dir is not None else path.parent / f"{path.stem}_figures"
    lines = [f"# {title}", ""]
    if meta:
        text = json.dumps(meta, indent=2, default=str)
        fence = _fence(text)
        lines += [f"{fence}json", text, fence, ""]
    for i, section in enumerate(sections):
        lines += [f"## {section.title}", ""]
        for p in section.paragraphs:
            lines += [p, ""]
        for table in section.tables:
            _check_table(table)
            lines.append("| " + " | ".join(_md_cell(h) for h in table.header) + " |")
            lines.append("|" + "|".join("---" for _ in table.header) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
            lines += [f"*{table.caption}*" if table.caption else "", ""]
        for j, fig in enumerate(section.figures):
            if fig.png is not None:
                target = _atomic_write(fig_dir / f"s{i}_f{j}.png", fig.png)
            elif fig.path is not None:
                target = Path(fig.path)
            else:
                raise ValueError("a Figure needs a path or png bytes")
            rel = Path(os.path.relpath(target.resolve(), path.parent.resolve())).as_posix()
            lines += [f"![{fig.caption or section.title}]({rel})", ""]
            if fig.caption:
                lines += [f"*{fig.caption}*", ""]
        for code in section.code:
            fence = _fence(code)
            lines += [fence, code, fence, ""]
    return _atomic_write(path, "\n".join(lines).encode("utf-8"))


def _save_figure(fig: Any, path: str | Path) -> Path:
    """Render a matplotlib figure to PNG bytes, close it, and write the PNG atomically."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    return _atomic_write(path, buf.getvalue())


def _tick_positions(count: int, max_ticks: int = 24) -> list[int]:
    step = max(1, -(-count // max_ticks))
    return list(range(0, count, step))


def heatmap(
    path: str | Path,
    matrix: np.ndarray,
    x_labels: Sequence,
    y_labels: Sequence,
    title: str,
    xlabel: str,
    ylabel: str,
    cbar_label: str,
    vmin: float | None = None,
    vmax: float | None = None,
    marks: dict[str, tuple[float | None, float | None]] | None = None,
) -> Path:
    """Save a [rows, cols] matrix as a PNG heatmap (row 0 at the top; NaN cells blank) and return the path.

    x_labels / y_labels name the columns / rows (ticks are thinned past 24). `marks` maps a legend label to
    (column, row) positions in cell-index units (cell i is centred on i; use i − 0.5 for the boundary before
    cell i; None: no line on that axis): a dashed vertical line at the column, a horizontal one at the row.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, np.float64)
    if m.ndim != 2 or m.shape != (len(y_labels), len(x_labels)):
        raise ValueError(f"matrix shape {m.shape} does not match {len(y_labels)} y labels × {len(x_labels)} x labels")
    rows, cols = m.shape
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    fig, ax = plt.subplots(figsize=(min(14.0, 2.5 + 0.28 * cols), min(12.0, 2.0 + 0.24 * rows)))
    image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=cbar_label)
    xt, yt = _tick_positions(cols), _tick_positions(rows)
    ax.set_xticks(xt, [str(x_labels[i]) for i in xt], fontsize=7, rotation=90 if cols > 12 else 0)
    ax.set_yticks(yt, [str(y_labels[i]) for i in yt], fontsize=7)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, (col, row)) in enumerate((marks or {}).items()):
        colour = colours[(k + 3) % len(colours)]
        if col is not None:
            ax.axvline(col, color=colour, ls="--", lw=1.2, label=label)
        if row is not None:
            ax.axhline(row, color=colour, ls="--", lw=1.2, label=None if col is not None else label)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    if marks:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    return _save_figure(fig, path)


def curves(
    path: str | Path,
    x: np.ndarray,
    series: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
    title: str,
    xlabel: str,
    ylabel: str,
    vlines: dict[str, float] | None = None,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """Save line plots of y against x, one per series label, as a PNG and return the path.

    Each series is (y, low, high); the band between low and high is shaded when both are given. `vlines` maps a
    legend label to an x position drawn as a dashed vertical line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(x)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, (y, low, high) in series.items():
        y = np.asarray(y, np.float64)
        if y.shape != x.shape:
            raise ValueError(f"series {label!r} has shape {y.shape}, x has {x.shape}")
        (line,) = ax.plot(x, y, lw=1.6, label=label)
        if low is not None and high is not None:
            ax.fill_between(
                x, np.asarray(low, np.float64), np.asarray(high, np.float64), color=line.get_color(), alpha=0.2, lw=0
            )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, pos) in enumerate((vlines or {}).items()):
        ax.axvline(pos, color=colours[(len(series) + k) % len(colours)], ls="--", lw=1.0, label=label)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if series or vlines:
        ax.legend(fontsize=7, framealpha=0.8)
    ax.grid(alpha=0.3)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    return _save_figure(fig, path)
