"""Argument types of `cos-jax sample` shared by the toy and the pipeline paths: step ranges, sizes, CFG scales.
They raise `argparse.ArgumentTypeError`, so argparse reports a bad value in one line."""

from __future__ import annotations

import argparse


def parse_steps(text: str | None) -> list[int] | None:
    """'0-19,45,47-49' -> [0, …, 19, 45, 47, 48, 49]; None/'all' -> None."""
    if text in (None, "", "all"):
        return None
    steps: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise argparse.ArgumentTypeError(f"bad step range {part!r} in {text!r}; use e.g. 0-19,45-49")
        steps += list(range(int(lo), int(hi or lo) + 1))
    return steps


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'832*480' (Wan2.2 generate.py's WIDTH*HEIGHT) -> (height 480, width 832)."""
    if text is None:
        return None
    parts = text.lower().replace("x", "*").split("*")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"bad --size {text!r}; use WIDTH*HEIGHT as in Wan2.2, e.g. 832*480")
    width, height = (int(p) for p in parts)
    return height, width


def parse_guidance(text: str | None) -> float | tuple[float, float] | None:
    """'5' (both experts) or '4,3' (high-noise, low-noise)."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"bad --guidance {text!r}; use one scale (5) or high,low (4,3)")
    return values[0] if len(values) == 1 else (values[0], values[1])
