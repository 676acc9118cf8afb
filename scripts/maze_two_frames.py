"""Do the frames of a `maze_two` video agree on one route? A per-frame reading of the two-expert toy's videos.

    python scripts/maze_two_frames.py --per-task 48 --out benchmarks/toy_a14b/frames.json

For held-out `maze_two` boards (test split) the shipped pair (or `--loras HIGH LOW`) samples one video each
(50 Euler steps, CFG 5, switch at t < 875). Per video: the agent's cell in every frame (the green block, as
the scorer finds it) labelled by the route it lies on — A only, B only, shared by both, or off both — and
the final trail's share of each route's own blocks. A video whose agent stands on A-only cells in some
frames and B-only cells in others has frames that chose different routes. Writes JSON with the counts per
outcome (success / failure) and prints a table.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from cos_jax.arrays_io import atomic_write
from cos_jax.pipelines.toy import decode_video, generate, load_toy_a14b, lora_pair_label, toy_sampling
from cos_jax.tasks import get_task
from cos_jax.tasks.maze import agent_cells, drawn_trail, route_blocks
from cos_jax.train.evaluate import held_out_samples


def read_video(task, video: np.ndarray, meta: dict) -> dict:
    """Per-frame route labels of the agent and the final trail's coverage of each route's own blocks, read
    as the scorer reads them (`agent_cells`, `drawn_trail`)."""
    routes = [[tuple(c) for c in r] for r in meta["solution"]["routes"]]
    cells_a, cells_b = set(routes[0]), set(routes[1])
    f = task.fractions(video, meta)
    labels = []
    for cell in agent_cells(f, meta["params"]["cells"]):
        on_a, on_b = cell in cells_a, cell in cells_b
        labels.append(
            "none" if cell is None else "shared" if on_a and on_b else "A" if on_a else "B" if on_b else "off"
        )
    trail = drawn_trail(f[-1])
    blocks_a, blocks_b = set(route_blocks(routes[0])), set(route_blocks(routes[1]))
    cover = lambda blocks: float(np.mean([trail[b] for b in blocks])) if blocks else 1.0
    return {"frames": labels, "trail_a": cover(blocks_a - blocks_b), "trail_b": cover(blocks_b - blocks_a)}


def classify(reading: dict) -> str:
    """both routes in the frames / one route / neither (the agent stays on shared cells or is lost)."""
    seen = set(reading["frames"])
    if {"A", "B"} <= seen:
        return "frames on both routes"
    if "A" in seen or "B" in seen:
        return "frames on one route"
    return "frames on neither route's own cells"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-task", type=int, default=48)
    p.add_argument("--difficulty", type=int, default=1)
    p.add_argument("--loras", nargs=2, default=None, metavar=("HIGH", "LOW"), help="default: the shipped pair")
    p.add_argument("--chunk", type=int, default=16, help="worlds per sampling call")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    pair, spec = load_toy_a14b(loras=tuple(args.loras) if args.loras else None)
    task = get_task("maze_two")
    samples = held_out_samples([f"maze_two@{args.difficulty}"], args.per_task, spec)
    config = toy_sampling(50, 5.0, two_experts=True)
    rows = []
    for i in range(0, len(samples), args.chunk):
        part = samples[i : i + args.chunk]
        traj = generate(pair, spec, np.stack([s.first_frame for s in part]), [s.prompt for s in part],
                        seeds=list(range(i, i + len(part))), config=config, keep_steps=[49])  # fmt: skip
        for s, video in zip(part, decode_video(spec, traj.latent), strict=True):
            result = task.score(video, s.meta)
            reading = read_video(task, video, s.meta)
            subscores = {k: round(float(v), 4) for k, v in result.subscores.items()}
            rows.append({"seed": s.meta["seed"], "success": bool(result.success), "score": float(result.score),
                         "kind": classify(reading), "subscores": subscores, **reading})  # fmt: skip
        print(f"{len(rows)}/{len(samples)} boards", flush=True)
    table = {outcome: dict(Counter(r["kind"] for r in rows if r["success"] == ok))
             for outcome, ok in (("success", True), ("failure", False))}  # fmt: skip
    trails = {outcome: {"both routes' own blocks drawn (≥ 0.5 each)": sum(
        r["trail_a"] >= 0.5 and r["trail_b"] >= 0.5 for r in rows if r["success"] == ok)}
        for outcome, ok in (("success", True), ("failure", False))}  # fmt: skip
    failures = [r for r in rows if not r["success"]]
    why = {"goal not reached": sum(r["subscores"]["completion"] < 1 for r in failures),
           "agent jumps (validity < 1)": sum(r["subscores"]["validity"] < 1 for r in failures),
           "goal reached with valid moves (so the trail is off the route)": sum(
               r["subscores"]["completion"] == 1 and r["subscores"]["validity"] == 1 for r in failures)}  # fmt: skip
    loras = lora_pair_label(args.loras)
    report = {"meta": {"per_task": args.per_task, "difficulty": args.difficulty, "loras": loras,
                       "sampler": "50 Euler steps, shift 5, CFG 5, switch at t < 875"},
              "frames": table, "trails": trails, "failures": why, "boards": rows}  # fmt: skip
    out = Path(args.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1)))
    print(json.dumps({"frames": table, "trails": trails, "failures": why}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
