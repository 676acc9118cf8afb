"""Shared pieces of the benchmark scripts: the DiT config and latent grid of a video size, timing, memory,
JSON lines."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax

from cos_jax.arrays_io import atomic_write
from cos_jax.wan.config import DiTConfig, preset


def config_and_latent(name: str, size: str, layers: int | None = None) -> tuple[DiTConfig, tuple[int, int, int]]:
    """The preset (with only `layers` blocks if given) and the latent (F, H, W) of an HxWxFRAMES video
    (VAE stride 4 in time, 8 in space; 16 for TI2V-5B's Wan2.2 VAE)."""
    cfg = preset(name)
    if layers:
        cfg = cfg.replace(num_layers=layers)
    h, w, frames = (int(v) for v in size.split("x"))
    stride = 16 if cfg.model_type == "ti2v" else 8
    return cfg, ((frames - 1) // 4 + 1, h // stride, w // stride)


def append_json_line(path: str | None, result: dict) -> None:
    """Append `result` to a JSON-lines file, atomically (the old lines and the new one written whole)."""
    if path:
        old = Path(path).read_text() if Path(path).exists() else ""
        atomic_write(path, lambda tmp: Path(tmp).write_text(old + json.dumps(result) + "\n"))


def gib(n_bytes: int) -> float:
    return round(n_bytes / 2**30, 2)


def plan_gib(compiled) -> dict[str, float]:
    """XLA's memory plan of a compiled call in GiB: arguments, outputs, temporaries and their total ({} where
    the backend gives none)."""
    mem = compiled.memory_analysis()
    if mem is None:
        return {}
    parts = {k: getattr(mem, f"{k}_size_in_bytes") for k in ("argument", "output", "temp")}
    return {f"{k}_gib": gib(v) for k, v in parts.items()} | {"total_gib": gib(sum(parts.values()))}


def peak_gib() -> float | None:
    """The largest peak of device memory in use so far over this process's devices (JAX cannot reset it)."""
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in jax.local_devices()]
    return None if None in peaks else gib(max(peaks))


def time_runs(run: Callable, repeats: int, sync: Callable = jax.block_until_ready, warmup: bool = True) -> list[float]:
    """Seconds of `repeats` calls of `run` after one warm-up (compiling) call unless `warmup=False`, each ended
    by `sync(result)`."""
    if warmup:
        sync(run())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sync(run())
        times.append(time.perf_counter() - start)
    return times


def median_seconds(run: Callable, repeats: int, sync: Callable = jax.block_until_ready, warmup: bool = True) -> float:
    """The median of `time_runs`."""
    return statistics.median(time_runs(run, repeats, sync, warmup))
