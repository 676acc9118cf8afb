"""The shipped toy world's whole training history on one global step axis: loss and held-out success.

    python scripts/plot_toy_history.py      # writes benchmarks/toy_training/history.png

Each run continued from the EMA weights the run before it saved; its log is offset by the steps before it
and cut at the step whose weights the next run started from: the run's final step (its summary.json), or,
for lease 4a, whose machine went back at step 2,800, step 2,000 (the last weights copied off it).
"""

from __future__ import annotations

import json
from pathlib import Path

from cos_jax.train.run import plot_rows

ROOT = Path(__file__).resolve().parents[1] / "benchmarks" / "toy_training"
RUNS = [  # (run folder, label, steps kept where the run's machine went back before its summary)
    (".", "run 1: 3 tasks, batch 256", None),
    ("run2", "run 2: maze-heavy", None),
    ("run4/lease_a", "run 4a: 8 tasks, batch 1024", 2000),
    ("run4/lease_b", "run 4b: 8 tasks, batch 1024", None),
    ("run4/lease_c", "run 4c: 8 tasks, lr 2e-4", None),
    ("run5/lease_a", "run 5a: + tic-tac-toe two wins", None),
    ("run5/lease_b", "run 5b: two wins, balanced", None),
]


def main():
    rows, boundaries, offset = [], [], 0
    for folder, label, cut in RUNS:
        run = ROOT / folder
        kept = cut or json.loads((run / "summary.json").read_text())["steps"]
        boundaries.append((offset, label))
        for line in (run / "log.jsonl").read_text().splitlines():
            row = json.loads(line) if line.strip() else None
            if row and row["step"] <= kept:
                rows.append(row | {"step": row["step"] + offset})
        offset += kept
    out = plot_rows(rows, ROOT / "history.png", boundaries)
    print(f"{offset} steps in all; wrote {out}")


if __name__ == "__main__":
    main()
