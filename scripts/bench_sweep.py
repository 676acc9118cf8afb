"""Throughput of one experiment sweep on one device against the same sweep spread over a mesh (worlds over
`data`), in one process with one model.

    python scripts/bench_sweep.py configs/vbvr_wan22/perturb.toml --model random:i2v-a14b --mesh data=2 \
        --set per_task=2 tasks=[\"maze\"] batch=2 --out sweep.jsonl

The config runs twice through the experiment runner, into fresh folders: first on one device, then with
`mesh` set (the experts are moved onto the mesh one at a time, so the one-device copies are gone first).
Each point's seconds come from its record; the first point of a run holds compiling and prompt encoding,
so sweep points per hour are taken from the median of the others (the slowest point left out; the first
point of each program compiles too, so give a program several points). Points of one kind should compute
the same steps: `perturb`'s step points start at their step, its frame points run them all. Both runs'
records must agree (their largest difference is printed); on random weights the scores mean nothing.
Peaks are the process's largest so far (JAX cannot reset them), so the mesh run's includes the first run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from bench_common import append_json_line, peak_gib

from cos_jax.experiments.config import load_config
from cos_jax.experiments.models import load_model
from cos_jax.experiments.runner import load_records, run
from cos_jax.parallel import make_mesh, shard_model


def timed_sweep(config: dict, model, out: Path) -> tuple[dict, dict]:
    """Run the sweep into `out`; its records and timing (wall, per-point seconds, points per hour)."""
    start = time.perf_counter()
    run(config, out, progress=True, model=model)
    wall = time.perf_counter() - start
    records = load_records(out)
    seconds = sorted(float(r["seconds"]) for r in records.values())
    steady = seconds[:-1] or seconds  # all but the slowest (the first, which compiles)
    per_point = statistics.median(steady)
    return records, {"wall_s": round(wall, 1), "points": len(seconds), "point_seconds": [round(s, 2) for s in seconds],
                     "steady_seconds_per_point": round(per_point, 2), "points_per_hour": round(3600 / per_point, 1),
                     "peak_gib": peak_gib()}  # fmt: skip


def with_expert_on_mesh(model, i: int, mesh):
    """The model with expert `i` placed on `mesh` (rebinding the caller's model frees the one-device copy)."""
    experts = (*model.experts[:i], shard_model(model.experts[i], mesh), *model.experts[i + 1 :])
    return dataclasses.replace(model, experts=experts, backend=dataclasses.replace(model.backend, experts=experts))


def largest_record_difference(a: dict, b: dict) -> float:
    """The largest |difference| over the numeric arrays both runs' records hold under the same names."""
    diffs = [0.0]
    for point, rec in a.items():
        for key, value in rec.items():
            other = b.get(point, {}).get(key)
            if key != "seconds" and isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.number):
                diffs.append(float(np.abs(value.astype(np.float64) - np.asarray(other, np.float64)).max()))
    return max(diffs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("--model", default="random:i2v-a14b")
    p.add_argument("--mesh", default="data=2")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", help="append the result as one JSON line to this file")
    args = p.parse_args()

    one = load_config(args.config, [*args.set, f"model={json.dumps(args.model)}", "mesh=''"])
    spread = load_config(args.config, [*args.set, f"model={json.dumps(args.model)}", f"mesh={json.dumps(args.mesh)}"])
    model = load_model(args.model, one["resolution"], one["frames"], one["vae_precision"])
    result = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "config": args.config,
              "model": args.model, "set": args.set, "mesh": args.mesh}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        records_one, result["one_device"] = timed_sweep(one, model, Path(tmp) / "one")
        print(json.dumps(result["one_device"]), flush=True)
        mesh = make_mesh(args.mesh)
        for i in range(len(model.experts)):  # one at a time, so two copies of both never coexist
            model = with_expert_on_mesh(model, i, mesh)
        records_mesh, result["on_mesh"] = timed_sweep(spread, model, Path(tmp) / "mesh")
    result["speedup_points_per_hour"] = round(
        result["on_mesh"]["points_per_hour"] / result["one_device"]["points_per_hour"], 3
    )
    result["largest_record_difference"] = largest_record_difference(records_one, records_mesh)
    print(json.dumps(result))
    append_json_line(args.out, result)


if __name__ == "__main__":
    main()
