"""The experiment runner on the toy world at a tiny size: resume, shards + merge, bit-identical reruns, one
compilation per plan structure, the output-folder guard and the CLI's one-line errors."""

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from cos_jax.cli import main
from cos_jax.experiments.config import ExperimentError, load_config
from cos_jax.experiments.models import load_model
from cos_jax.experiments.perturb import Perturb
from cos_jax.experiments.runner import merge, run
from cos_jax.sampling.api import _run_jitted

ROOT = Path(__file__).parents[2]
PERTURB = ROOT / "configs/toy/perturb.toml"
TINY = ["per_task=1", "tasks=['select_next','tictactoe']", "steps=3", "batch=2", "noise_steps=[0,1,2]",
        "noise_frames=[4]", "alphas=[1.0]", "modes=['replace']", "calibrate_modes=['replace']",
        "calibrate_steps=[1]", "calibrate_iters=2"]  # fmt: skip


@pytest.fixture(scope="module")
def toy():
    return load_model("toy")


@pytest.fixture(scope="module")
def reference(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "perturb"
    results = run(load_config(PERTURB, TINY), out, progress=False, model=toy)
    return out, results


def _points(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "points").iterdir())


def test_run_writes_results_report_and_points(reference):
    out, results = reference
    (calib,) = results["calibration"]  # the bisection stops at i0 when α = 1 cannot halve the score
    evaluated = [f"calib-replace-s01-i{k}.npz" for k in range(3 if calib["reached"] else 1)]
    assert len(calib["history"]) == len(evaluated)
    assert _points(out) == sorted(
        ["clean.npz", "step-replace-a1-s00.npz", "step-replace-a1-s01.npz", "step-replace-a1-s02.npz",
         "frame-replace-a1-f4.npz", *evaluated])  # fmt: skip
    assert results["num_samples"] == 2 and results["clean"]["success"][0] in (0.0, 0.5, 1.0)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Noise at a step" in html
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert not list(out.rglob("*.tmp"))


def test_a_sweep_without_frame_points_reports_no_frame_section(reference, tmp_path):
    from cos_jax.experiments.runner import IDENTITY, finish, load_records

    out, _ = reference
    info = json.loads((out / IDENTITY).read_text())
    info["config"] |= {"noise_frames": []}
    records = {k: v for k, v in load_records(out).items() if not k.startswith("frame-")}
    finish(tmp_path, info, records)
    report = (tmp_path / "report.md").read_text()
    assert "Noise at a step" in report and "Noise at a latent frame" not in report
    assert "Noise at a latent frame" in (out / "report.md").read_text()


def test_rerun_is_bit_identical_and_skips_done_points(reference, toy, monkeypatch):
    out, _ = reference
    before = (out / "results.json").read_bytes()
    monkeypatch.setattr(Perturb, "run_point", lambda *a: pytest.fail("a finished point ran again"))
    run(load_config(PERTURB, TINY), out, progress=False, model=toy)
    assert (out / "results.json").read_bytes() == before


def test_a_common_key_added_later_resumes_at_its_default(reference, toy, tmp_path, monkeypatch):
    """A folder made before a common key existed (no `vae_precision` in its identity) resumes with the key
    at its default, and is refused with another value."""
    import shutil

    out = tmp_path / "old"
    shutil.copytree(reference[0], out)
    identity = json.loads((out / "experiment.json").read_text())
    del identity["config"]["vae_precision"]
    (out / "experiment.json").write_text(json.dumps(identity))
    monkeypatch.setattr(Perturb, "run_point", lambda *a: pytest.fail("a finished point ran again"))
    run(load_config(PERTURB, TINY), out, progress=False, model=toy)
    with pytest.raises(ExperimentError, match="config keys vae_precision differ"):
        run(load_config(PERTURB, [*TINY, "vae_precision=tf32"]), out, progress=False, model=toy)


def test_a_folder_made_with_other_weights_is_refused(reference, toy, tmp_path):
    """The record names the shipped weights (a fingerprint of the files, the LoRA pair's too for
    toy-a14b), so a run resumed after the weights changed is refused instead of mixing two models."""
    import shutil

    from cos_jax.pipelines.toy import shipped_fingerprint

    identity = json.loads((reference[0] / "experiment.json").read_text())
    assert identity["model"]["weights"] == shipped_fingerprint() != shipped_fingerprint(two_experts=True)
    out = tmp_path / "retrained"
    shutil.copytree(reference[0], out)
    identity["model"]["weights"] = "sha256:0123456789abcdef"
    (out / "experiment.json").write_text(json.dumps(identity))
    with pytest.raises(ExperimentError, match="the model differs: weights sha256:0123456789abcdef there"):
        run(load_config(PERTURB, TINY), out, progress=False, model=toy)


def test_killed_run_resumes_to_the_same_results(reference, toy, tmp_path, monkeypatch):
    out = tmp_path / "killed"
    calls, original = [], Perturb.run_point

    def dies_on_third(self, session, point):
        calls.append(point.id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, session, point)

    monkeypatch.setattr(Perturb, "run_point", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run(load_config(PERTURB, TINY), out, progress=False, model=toy)
    assert len(_points(out)) == 2 and not (out / "results.json").exists() and not list(out.rglob("*.tmp"))
    monkeypatch.setattr(Perturb, "run_point", original)
    run(load_config(PERTURB, TINY), out, progress=False, model=toy)
    assert (out / "results.json").read_bytes() == (reference[0] / "results.json").read_bytes()


def test_shards_merge_to_the_unsharded_results(reference, toy, tmp_path):
    config = load_config(PERTURB, TINY)
    assert run(config, tmp_path / "s1", shard=(1, 2), progress=False, model=toy) is None
    run(config, tmp_path / "s0", shard=(0, 2), progress=False, model=toy)
    assert not (tmp_path / "s0" / "results.json").exists()  # shard 0 alone is incomplete
    merge(tmp_path / "all", [tmp_path / "s0", tmp_path / "s1"])
    assert (tmp_path / "all" / "results.json").read_bytes() == (reference[0] / "results.json").read_bytes()


def test_changing_the_step_or_frame_does_not_recompile(toy, tmp_path):
    sets = [*TINY, "tasks=['select_next','tictactoe','maze@1']", "batch=3", "calibrate_modes=[]"]
    before = _run_jitted._cache_size()
    run(load_config(PERTURB, sets), tmp_path / "c", progress=False, model=toy)  # clean + 3 steps + 1 frame
    # three programs: the clean run (keeping the states the step points start from), every step point
    # (the start step is data), every frame point
    assert _run_jitted._cache_size() - before == 3


def test_step_points_start_from_the_clean_state_with_the_whole_runs_latents(toy):
    """A step point's calls start from the clean run's state at its step and end bit-identical to the
    calls that compute every step (CPU)."""
    from cos_jax.experiments.base import Point
    from cos_jax.experiments.session import build_session

    exp = Perturb()
    session = build_session(load_config(PERTURB, [*TINY, "steps=6", "noise_steps=[4]"]), toy, exp)
    point = Point("step-renoise", {"kind": "step", "mode": "renoise", "alpha": 1.0, "at": 4})  # every mode: test_loop
    plan = lambda w: exp.plan_for(session, point, w)
    forked = [t for _, _, t in session.trajectories(plan, start=exp.starts(session, point))]
    whole = [t for _, _, t in session.trajectories(plan)]
    assert len(forked) == len(whole) == 1
    np.testing.assert_array_equal(forked[0].latent, whole[0].latent)
    assert np.abs(forked[0].latent - session.kept["clean_states"][0].latent).max() > 1e-3  # it was perturbed


def test_perturbation_is_causal(toy):
    """x̂0 before the perturbed step is untouched; from that step on it changes."""
    from cos_jax.experiments.session import build_session

    config = load_config(PERTURB, TINY)
    session = build_session(config, toy)
    exp = Perturb()
    from cos_jax.experiments.runner import Point
    from cos_jax.sampling import sample

    inputs = session.inputs(0, session.chunks()[0])
    x0 = {}
    for name, at in (("clean", None), ("step", 2)):
        point = Point(name, {"kind": "clean"} if at is None else {"kind": "step", "at": at})
        point.params.update(mode="replace", alpha=1.0)
        traj = sample(toy.dit, inputs["cond"], session.sampling, noise=inputs["noise"],
                      plan=exp.plan_for(session, point, 2), plan_seed=0)  # fmt: skip
        x0[name] = traj.x0
    np.testing.assert_array_equal(x0["clean"][:2], x0["step"][:2])
    assert np.abs(x0["clean"][2] - x0["step"][2]).max() > 0.1


def test_output_folder_guard_and_cli_errors(reference, tmp_path, capsys):
    out, _ = reference
    with pytest.raises(ExperimentError, match=r"holds results of another run .*config keys per_task differ"):
        run(load_config(PERTURB, [*TINY, "per_task=2"]), out, progress=False, model=load_model("toy"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    cases = [
        (["run", str(PERTURB), "--set", "per_taks=1"], "unknown key 'per_taks'"),
        (["run", str(PERTURB), "--out", str(tmp_path / "other"), "--set", *TINY], "holds other files"),
        (["run", str(PERTURB), "--set", "noise_steps=[60]"], r"noise_steps = \[60\]: step\(s\) \[60\] out of range"),
        (
            ["run", str(PERTURB), "--model", str(tmp_path / "missing")],
            "neither 'toy', 'toy-a14b', 'random:i2v-a14b', 'random:tiny-i2v-a14b' nor an existing folder",
        ),
        (["run", str(PERTURB), "--set", "model_kind=i2v-a14b"], "written for i2v-a14b models; --model toy is a toy"),
        (["report", str(tmp_path)], "holds no experiment"),
    ]
    for args, message in cases:
        assert main(["experiment", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message.split(".*")[0].replace("\\", "") in err.replace("\\", "")
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "other").exists() and sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]


def test_dry_run_reports_size_memory_and_time(capsys):
    assert main(["experiment", "run", str(PERTURB), "--dry-run", "--set", *TINY]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["points"] == 5 and report["calls_per_point"] == 1 and report["step_seconds"] > 0
    assert report["memory_bytes"] is None or report["memory_bytes"]["temp_size_in_bytes"] >= 0
    # under a mesh the plan is per device: the weights split over fsdp x context, the worlds over data
    assert main(["experiment", "run", str(PERTURB), "--dry-run", "--set", *TINY, "mesh='data=2,context=4'"]) == 0
    spread = json.loads(capsys.readouterr().out)["memory_bytes"]
    if report["memory_bytes"] is not None:
        assert spread["argument_size_in_bytes"] < report["memory_bytes"]["argument_size_in_bytes"] / 2


def test_noise_worlds_are_paired_across_points(toy):
    from cos_jax.experiments.session import build_session

    session = build_session(load_config(PERTURB, TINY), toy)
    a, b = session.inputs(0, np.array([0, 1])), session.inputs(0, np.array([1, 1]))
    np.testing.assert_array_equal(np.asarray(a["noise"][1]), np.asarray(b["noise"][0]))
    assert jnp.abs(a["noise"][0] - a["noise"][1]).max() > 0
