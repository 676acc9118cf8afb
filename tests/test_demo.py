"""The shipped toy world: it loads, reproduces its training-time scores, and `cos-jax demo --quick` runs."""

import json

import numpy as np

from cos_jax.cli import main
from cos_jax.pipelines.toy import load_toy
from cos_jax.train.checkpoint import read_meta
from cos_jax.train.evaluate import evaluate, held_out_samples


def test_shipped_toy_solves_held_out_puzzles():
    """Training-time evaluation of the shipped EMA (benchmarks/toy_training/run4/lease_c/eval.md, 100 held-out
    seeds per task on the GPU) gave success 0.99 on select_next and tictactoe, 1.00 on majority_colour and
    0.84 on 4x4 mazes (score 0.96). On the first held-out seed of each (CPU sampling, 50 steps, CFG 5) we
    require the three answers solved and the maze scored >= 0.8 (the wrong-route baseline scores 0.52)."""
    from importlib import resources

    model, spec = load_toy()
    assert read_meta(resources.files("cos_jax") / "assets" / "toy" / "toy_ema.npz")["total_steps"] >= 20000
    entries = ["select_next", "tictactoe", "majority_colour", "maze@1"]
    report = evaluate(model, spec, held_out_samples(entries, 1, spec), steps=50)
    assert all(report[t]["success"] == 1.0 for t in entries[:3]), report
    assert report["maze@1"]["score"] >= 0.8, report


def test_demo_quick_writes_its_files(tmp_path):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    for stem in ("select_next_00", "tictactoe_01", "maze_02"):
        assert {f"{stem}.mp4", f"{stem}.gif", f"{stem}_x0_steps.png", f"{stem}_exploration.json"} <= names
    report = json.loads((tmp_path / "scores.json").read_text())
    assert len(report["rows"]) == 3 and 0.0 <= report["mean_score"] <= 1.0
    diag = json.loads((tmp_path / "maze_02_exploration.json").read_text())
    assert np.asarray(diag["activations"]).shape[0] == 8  # one row per denoising step
