"""The shipped toy world: it loads, reproduces its training-time scores, and `cos-jax demo --quick` runs."""

import json

import numpy as np

from cos_jax.cli import main
from cos_jax.pipelines.toy import load_toy
from cos_jax.train.checkpoint import read_meta
from cos_jax.train.evaluate import evaluate, held_out_samples


def test_shipped_toy_solves_held_out_puzzles():
    """Training-time evaluation (benchmarks/toy_training/run2/log.jsonl, step 3000, 32 seeds per task) gave
    success 1.0 on select_next and tictactoe; on one fixed held-out seed each we require both solved."""
    model, spec = load_toy()
    from importlib import resources

    assert read_meta(resources.files("cos_jax") / "assets" / "toy" / "toy_ema.npz")["total_steps"] >= 15000
    report = evaluate(model, spec, held_out_samples(["select_next", "tictactoe"], 1, spec), steps=50)
    assert report["select_next"]["success"] == 1.0 and report["tictactoe"]["success"] == 1.0, report


def test_demo_quick_writes_its_files(tmp_path):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    for stem in ("select_next_00", "tictactoe_01", "maze_02"):
        assert {f"{stem}.mp4", f"{stem}.gif", f"{stem}_x0_steps.png", f"{stem}_exploration.json"} <= names
    report = json.loads((tmp_path / "scores.json").read_text())
    assert len(report["rows"]) == 3 and 0.0 <= report["mean_score"] <= 1.0
    diag = json.loads((tmp_path / "maze_02_exploration.json").read_text())
    assert np.asarray(diag["activations"]).shape[0] == 8  # one row per denoising step
