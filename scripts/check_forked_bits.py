"""Do sweep points that start from the clean run's state give the bits of runs that compute every step?

    python scripts/check_forked_bits.py --per-task 4 --out forked_bits.json

`perturb`'s step points and `propagation`'s injection points start from a kept clean state
(`sample(start=)`); on CPU that is bit-identical to the whole run (tests). This runs both ways on the
default device at the protocol's 50 steps on the toy (or `--model toy-a14b`, whose switch lies between the
chosen steps) and writes, per point, the largest absolute difference of every result array (0.0 means
the same bits).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from cos_jax.arrays_io import atomic_write
from cos_jax.experiments.base import Point
from cos_jax.experiments.config import load_config
from cos_jax.experiments.models import load_model
from cos_jax.experiments.perturb import Perturb
from cos_jax.experiments.propagation import Propagation
from cos_jax.experiments.session import build_session

ROOT = Path(__file__).resolve().parents[1]
STEPS = [10, 30, 45]


class WholePropagation(Propagation):
    """`propagation` computing every step of every point (no shared prefix)."""

    def prefix(self, session, point, sampling):
        return None


def largest_difference(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0.0))


def check_perturb(model, common: list[str]) -> dict:
    exp = Perturb()
    config = load_config(ROOT / "configs/toy/perturb.toml", [*common, f"noise_steps={STEPS}", "noise_frames=[]"])
    session = build_session(config, model, exp)
    out = {}
    for mode in ("replace", "renoise", "add"):
        for at in STEPS:
            point = Point(f"step-{mode}-s{at:02d}", {"kind": "step", "mode": mode, "alpha": 1.0, "at": at})
            plan = lambda w, point=point: exp.plan_for(session, point, w)
            forked = [t.latent for _, _, t in session.trajectories(plan, start=exp.starts(session, point))]
            whole = [t.latent for _, _, t in session.trajectories(plan)]
            out[point.id] = {"latent": max(map(largest_difference, forked, whole))}
            print(point.id, out[point.id], flush=True)
    return out


def check_propagation(model, common: list[str]) -> dict:
    config = load_config(ROOT / "configs/toy/propagation.toml", [*common, f"inject_steps={STEPS}"])
    exp = Propagation()
    session = build_session(config, model, exp)
    out = {}
    for point in exp.points(config, {}):
        forked = exp.run_point(session, point)
        whole = WholePropagation().run_point(session, point)
        out[point.id] = {k: largest_difference(forked[k], v) for k, v in whole.items() if k != "switch_step"}
        print(point.id, max(out[point.id].values()), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="toy", help="toy or toy-a14b")
    p.add_argument("--per-task", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    start = time.perf_counter()
    model = load_model(args.model)
    common = [f"per_task={args.per_task}", f"batch={args.batch}", "tasks=['maze','tictactoe_two']"]
    result = {"device": str(jax.devices()[0].device_kind), "model": args.model, "per_task": args.per_task,
              "steps": STEPS, "perturb": check_perturb(model, common),
              "propagation": check_propagation(model, common)}  # fmt: skip
    every = [v for part in ("perturb", "propagation") for rec in result[part].values() for v in rec.values()]
    result["identical"] = max(every) == 0.0
    result["seconds"] = round(time.perf_counter() - start, 1)
    atomic_write(Path(args.out), lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))
    print(f"{len(every)} arrays, largest difference {max(every):.3g} ({result['seconds']} s): "
          f"{'the same bits' if result['identical'] else 'NOT the same bits'}")  # fmt: skip


if __name__ == "__main__":
    main()
