"""Where a jitted call's device time goes: run it under the JAX profiler and sum the trace per kernel class.

    from trace_summary import profile_call
    summary = profile_call(lambda: compiled(*args), "trace_dir")   # also trace_dir/summary.json

The summary groups the device events of one call (the kernels of XLA ops) into classes (matmul,
attention, convolution, collective, copy/transpose, other fusions), with each class's share of busy time,
the busy time against the wall time of the call, and the kernels that take longest (by kernel name: ops
inside a CUDA graph all carry the graph's op name). Classes are read from
the kernel and op names, so they are a guide; the trace itself (`perfetto_trace.json.gz` under the
directory) opens in ui.perfetto.dev for the whole picture.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import jax

from cos_jax.arrays_io import atomic_write

# (class, substrings of the lower-cased kernel or op name), first match wins.
CLASSES = (
    ("attention", ("fmha", "flash", "sdpa", "cudnn$fmha", "attention")),
    ("collective", ("all-to-all", "all-gather", "all-reduce", "reduce-scatter", "nccl", "collective")),
    ("convolution", ("convolution", "cudnn-conv", "cudnn$conv", "fprop", "dgrad", "wgrad", "implicit_gemm")),
    ("matmul", ("gemm", "xmma", "cutlass", "nvjet", "cublas", "dot", "matmul", "wgmma")),
    ("copy/transpose", ("copy", "transpose", "memcpy", "memset", "dynamic-update-slice", "concatenate")),
)


def classify(kernel: str, op: str) -> str:
    names = f"{kernel} {op}".lower()
    for name, keys in CLASSES:
        if any(k in names for k in keys):
            return name
    return "other fusion"


def device_events(trace: dict) -> list[dict]:
    """The X events of XLA ops on device streams (GPU/TPU), or on the host's XLA threads when no device ran."""
    meta = [e for e in trace["traceEvents"] if e.get("ph") == "M"]
    process = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    thread = {(e["pid"], e.get("tid")): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    ops = [
        e
        for e in trace["traceEvents"]
        if e.get("ph") == "X" and "hlo_op" in e.get("args", {}) and not e["name"].startswith("end: ")
    ]
    on_device = [e for e in ops if process.get(e["pid"], "").startswith("/device:")]
    streams = [e for e in on_device if thread.get((e["pid"], e.get("tid")), "").lower().startswith("stream")]
    return streams or on_device or ops


def summarize(trace_path: str | Path, wall_s: float, top: int = 40) -> dict:
    """Per-class and per-op totals of the device events in a perfetto trace file (`*.json.gz`)."""
    with gzip.open(trace_path) as f:
        trace = json.load(f)
    events = device_events(trace)
    by_class: dict[str, float] = defaultdict(float)
    by_kernel: dict[str, dict] = {}
    for e in events:
        op, seconds = e["args"]["hlo_op"], e["dur"] / 1e6
        cls = classify(e["name"], op)
        by_class[cls] += seconds
        entry = by_kernel.setdefault(e["name"], {"kernel": e["name"][:160], "op": op, "class": cls,
                                                 "seconds": 0.0, "calls": 0})  # fmt: skip
        entry["seconds"] += seconds
        entry["calls"] += 1
    busy = sum(by_class.values())
    return {
        "wall_s": round(wall_s, 4),
        "device_busy_s": round(busy, 4),
        "classes": {
            k: {"seconds": round(v, 4), "share": round(v / busy, 4) if busy else None}
            for k, v in sorted(by_class.items(), key=lambda kv: -kv[1])
        },
        "top_kernels": [
            {**o, "seconds": round(o["seconds"], 5)}
            for o in sorted(by_kernel.values(), key=lambda o: -o["seconds"])[:top]
        ],
        "events": len(events),
    }


def profile_call(run: Callable, trace_dir: str | Path, extra: dict | None = None, top: int = 40) -> dict:
    """Trace one call of `run` (already compiled and warm), summarise its device time and write the summary
    (with `extra`) to trace_dir/summary.json."""
    trace_dir = Path(trace_dir)
    with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
        start = time.perf_counter()
        jax.block_until_ready(run())
        wall = time.perf_counter() - start
    newest = max(trace_dir.glob("plugins/profile/*/perfetto_trace.json.gz"), key=lambda p: p.stat().st_mtime)
    summary = summarize(newest, wall, top) | {"trace": str(newest.relative_to(trace_dir))} | (extra or {})
    atomic_write(trace_dir / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=1)))
    return summary
