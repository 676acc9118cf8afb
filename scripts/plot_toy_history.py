"""The shipped toy world's whole training history on one global step axis: loss and held-out success.

    python scripts/plot_toy_history.py      # writes benchmarks/toy_training/history.png

Each run continued from the EMA weights the run before it saved; its log is offset by the steps before it
and cut at the step whose weights the next run started from (lease 4a's machine went back at step 2,800;
its step-2,000 weights were the last copied off it).
"""

from __future__ import annotations

import json
from pathlib import Path

from cos_jax.train.run import plot_rows

ROOT = Path(__file__).resolve().parents[1] / "benchmarks" / "toy_training"
RUNS = [  # (log, steps kept, label)
    ("log.jsonl", 12038, "run 1: 3 tasks, batch 256"),
    ("run2/log.jsonl", 3236, "run 2: maze-heavy"),
    ("run4/lease_a/log.jsonl", 2000, "run 4a: 8 tasks, batch 1024"),
    ("run4/lease_b/log.jsonl", 3041, "run 4b: 8 tasks, batch 1024"),
    ("run4/lease_c/log.jsonl", 2194, "run 4c: 8 tasks, lr 2e-4"),
    ("run5/lease_a/log.jsonl", 4721, "run 5a: + tic-tac-toe two wins"),
    ("run5/lease_b/log.jsonl", 4643, "run 5b: two wins, balanced"),
]


def main():
    rows, boundaries, offset = [], [], 0
    for log, kept, label in RUNS:
        boundaries.append((offset, label))
        for line in (ROOT / log).read_text().splitlines():
            row = json.loads(line) if line.strip() else None
            if row and row["step"] <= kept:
                rows.append(row | {"step": row["step"] + offset})
        offset += kept
    out = plot_rows(rows, ROOT / "history.png", boundaries)
    print(f"{offset} steps in all; wrote {out}")


if __name__ == "__main__":
    main()
