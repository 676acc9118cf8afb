"""`cos-jax bench compare`: paired drops of perturbed runs against the clean run, from cos-jax or
VBVR-EvalKit per-sample scores, its report, and its one-line errors."""

import json

import numpy as np
import pytest

from cos_jax.bench.compare import CompareError, compare_runs, load_run
from cos_jax.cli import main

TASKS = ("maze", "clock")


def _run_folder(path, scores, perturb=None, model="toy", steps=50):
    """A run folder as `bench run` + `bench evaluate` leave it: run.json and cos_jax_results.json."""
    path.mkdir(parents=True)
    settings = {"steps": steps, "base_seed": 0, **({"perturb": perturb} if perturb else {})}
    (path / "run.json").write_text(json.dumps({"model": model, "settings": settings, "runs": [], "samples": {}}))
    rows = [{"split": "In-Domain", "task": t, "sample": f"{i:05d}", "category": "x", "score": float(s),
             "success": bool(s > 0.5), "subscores": {}, "error": None}
            for t, values in scores.items() for i, s in enumerate(values)]  # fmt: skip
    (path / "cos_jax_results.json").write_text(json.dumps({"summary": {}, "samples": rows}))
    return path


def _perturb(step, mode="replace", alpha=1.0):
    return {"mode": mode, "alpha": alpha, "step": step, "frame": None}


def test_paired_drops_per_setting_and_task(tmp_path):
    rng = np.random.default_rng(0)
    clean = {t: rng.uniform(0.6, 1.0, 20) for t in TASKS}
    _run_folder(tmp_path / "clean", clean)
    _run_folder(tmp_path / "s5", clean, _perturb(5))  # no change
    late = {"maze": clean["maze"] - 0.5, "clock": clean["clock"]}  # maze loses 0.5 on every sample
    _run_folder(tmp_path / "s40", late, _perturb(40))
    runs = [load_run(tmp_path / name) for name in ("clean", "s5", "s40")]
    results = compare_runs(runs[0], runs[1:], n_boot=500)
    early, later = results["settings"]
    assert early["label"] == "replace:step=5:alpha=1" and early["score"]["drop"] == pytest.approx(0.0)
    assert (early["score"]["drop_low"], early["score"]["drop_high"]) == pytest.approx((0.0, 0.0))
    assert later["by_task"]["maze"]["drop"] == pytest.approx(0.5)
    assert later["by_task"]["clock"]["drop"] == pytest.approx(0.0)
    assert later["score"]["drop"] == pytest.approx(0.25) and later["score"]["n"] == 40
    assert later["score"]["drop_low"] < 0.25 < later["score"]["drop_high"]  # half the pairs drop, half do not
    assert later["success"]["clean"] == 1.0 and later["success"]["perturbed"] == pytest.approx(0.5)


def test_evalkit_results_pair_by_video_path(tmp_path):
    """VBVR-EvalKit's `run_evaluation.py` results (samples with video_path and score) read back by path."""
    clean = _run_folder(tmp_path / "clean", {"maze": [1.0, 0.8]})
    perturbed = _run_folder(tmp_path / "late", {"maze": [0.0, 0.0]}, _perturb(45))
    for folder, scores in ((clean, [0.9, 0.7]), (perturbed, [0.4, 0.1])):
        samples = [{"video_path": str(folder / "In-Domain" / "maze" / f"{i:05d}.mp4"), "video_file": f"{i:05d}.mp4",
                    "task_name": "maze", "split": "In_Domain", "score": s, "dimensions": {}, "error": None}
                   for i, s in enumerate(scores)]  # fmt: skip
        (folder / f"{folder.name}_vbvr_results.json").write_text(json.dumps({"summary": {}, "samples": samples}))
    results = compare_runs(load_run(clean, "evalkit"), [load_run(perturbed, "evalkit")], n_boot=200)
    assert results["settings"][0]["score"]["drop"] == pytest.approx(0.55)
    assert "success" not in results["settings"][0]  # EvalKit gives no success flag


def test_compare_cli_writes_the_report(tmp_path, capsys):
    clean = {"maze": [1.0, 0.9, 0.8, 1.0]}
    _run_folder(tmp_path / "clean", clean)
    for step in (10, 30):
        _run_folder(tmp_path / f"s{step}", {"maze": [v - step / 100 for v in clean["maze"]]}, _perturb(step))
    report = tmp_path / "report"
    args = ["bench", "compare", str(tmp_path / "clean"), str(tmp_path / "s10"), str(tmp_path / "s30")]
    assert main([*args, "--report", str(report), "--n-boot", "100"]) == 0
    assert "replace:step=30:alpha=1" in capsys.readouterr().out
    results = json.loads((report / "results.json").read_text())
    assert [s["score"]["drop"] for s in results["settings"]] == pytest.approx([0.1, 0.3])
    assert (report / "drop_vs_step_replace_alpha1.png").read_bytes()[:4] == b"\x89PNG"
    assert "bench compare" in (report / "report.html").read_text()


def test_compare_errors_are_one_line(tmp_path, capsys):
    _run_folder(tmp_path / "clean", {"maze": [1.0]})
    _run_folder(tmp_path / "other", {"maze": [0.0]}, _perturb(3), steps=20)
    _run_folder(tmp_path / "late", {"maze": [0.0]}, _perturb(3))
    _run_folder(tmp_path / "plain", {"maze": [0.0]})
    (tmp_path / "unscored").mkdir()
    (tmp_path / "unscored" / "run.json").write_text((tmp_path / "late" / "run.json").read_text())
    cases = {
        ("late", "clean"): "is a perturbed run",
        ("clean", "plain"): "is not perturbed",
        ("clean", "other"): "differ in steps",
        ("clean", "unscored"): "cos-jax bench evaluate",
        ("clean", "missing"): "no run record",
    }
    for (first, second), message in cases.items():
        argv = ["bench", "compare", str(tmp_path / first), str(tmp_path / second), "--report", str(tmp_path / "r")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    with pytest.raises(CompareError, match=r"run_evaluation\.py --model_path"):
        load_run(tmp_path / "clean", "evalkit")
