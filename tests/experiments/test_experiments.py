"""Propagation's paired CKA on the toy, and every experiment config end to end on a tiny random I2V-A14B
folder (two experts, VAE, umT5, tokenizer) through the same code as the toy."""

import json
from pathlib import Path

import numpy as np
import pytest

from cos_jax.cli import main
from cos_jax.experiments.config import load_config
from cos_jax.experiments.models import load_model
from cos_jax.experiments.registry import EXPERIMENTS
from cos_jax.experiments.session import build_session
from cos_jax.sampling import sampling_preset

ROOT = Path(__file__).parents[2]
SMALL = {
    "perturb": ["noise_steps=[1]", "noise_frames=[2]", "alphas=[1.0]", "modes=['renoise']",
                "calibrate_modes=[]"],
    "propagation": ["inject_steps=[0,1]", "modes=['replace']", "layers=[0,1]", "boundaries=[875,950]"],
    "steps_frames": ["step_counts=[1,3]", "frame_counts=[9,13]"],
    "exploration": ["grid_samples=1"],
    "emergent": ["tasks=['permanence','tictactoe']"],
    "token_maps": ["layers=[0,1]", "show_steps=[0,2]"],
    "layer_swap": ["layers=[0,1]"],
    "ensemble": ["layer_ranges=[[0,2]]", "merge_steps=[1]", "seeds_per_problem=2"],
}  # fmt: skip


def test_propagation_points_from_the_shared_prefix_equal_whole_runs(monkeypatch):
    """Forked and whole points give the same records, bit for bit (CPU); CKA is 1 before s_t."""
    from cos_jax.experiments.propagation import Propagation, _paired_run

    config = load_config(ROOT / "configs/toy/propagation.toml",
                         ["per_task=1", "tasks=['tictactoe','select_next']", "steps=5", "batch=4", "layers=[0]",
                          "inject_steps=[0,3]", "modes=['replace']"])  # fmt: skip
    session = build_session(config, load_model("toy"))
    exp = EXPERIMENTS["propagation"]
    points = exp.points(config, {})
    before = _paired_run._cache_size()
    forked = {p.id: exp.run_point(session, p) for p in points}
    assert list(session.kept) == ["propagation_prefix"]  # one prefix for the sweep
    assert _paired_run._cache_size() - before == 2  # the prefix, and every point (s_t is data)
    monkeypatch.setattr(Propagation, "prefix", lambda self, session, point, sampling: None)  # whole runs
    for p in points:
        whole = exp.run_point(session, p)
        assert forked[p.id].keys() == whole.keys()
        for key, value in whole.items():
            np.testing.assert_array_equal(forked[p.id][key], value, err_msg=f"{p.id} {key}")  # bit-identical on CPU
    assert exp.sweep_steps(config, points) == (5 + 2) + 5
    record = forked["replace-t03"]  # CKA is 1 before the injection and drops at it
    for rep in ("latent", "x0", "layer0"):
        for kind in ("cka", "ucka"):
            assert record[f"{kind}_{rep}"].shape == (2, 5)
            np.testing.assert_allclose(record[f"{kind}_{rep}"][:, :3], 1.0, atol=1e-5, err_msg=f"{kind} {rep}")
    assert (record["cka_latent"][:, 3] < 0.2).all()  # replace α=1 swaps the whole latent for noise
    assert set(np.unique(record["success"])) <= {0.0, 1.0}


@pytest.fixture(scope="module")
def i2v_folder(tmp_path_factory):
    pytest.importorskip("diffusers")
    from cos_jax.pipelines.wan_reference import build_tiny_pipeline

    folder = tmp_path_factory.mktemp("i2v") / "i2v-a14b"
    build_tiny_pipeline(folder, "i2v-a14b")
    return folder


# The layer-level toy configs run on the toy itself in test_layer_experiments; here only their A14B versions.
LAYER_LEVEL = {"token_maps", "layer_swap", "ensemble"}
CONFIGS = sorted(ROOT.glob("configs/vbvr_wan22/*.toml")) + [
    p for p in sorted(ROOT.glob("configs/toy/*.toml")) if p.stem not in LAYER_LEVEL
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_experiment_runs_on_a_tiny_i2v_a14b_folder(config, i2v_folder, tmp_path, capsys):
    name = load_config(config)["experiment"]
    args = ["experiment", "run", str(config), "--model", str(i2v_folder), "--out", str(tmp_path / name), "--set",
            "per_task=1", "tasks=['select_next','tictactoe']", "resolution=32", "frames=9", "steps=3", "batch=4",
            "start=0", *SMALL[name], *(["vae_precision=tf32"] if name == "perturb" else [])]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    results = json.loads((tmp_path / name / "results.json").read_text())
    assert results["config"]["vae_precision"] == ("tf32" if name == "perturb" else "fp32")
    assert results["model"]["kind"] == "i2v-a14b" and results["model"]["experts"] == 2
    assert results["num_samples"] == (4 if name == "layer_swap" else 2)  # layer_swap: both problems of each pair
    if name == "propagation":
        paper = sampling_preset("paper").replace(steps=3)
        expected = {f"replace @ boundary {b}": paper.replace(boundary=float(b)).switch_step() for b in (875, 950)}
        assert sorted(expected.values()) == [1, 2]  # t = 1000, 909, 714: the two boundaries switch at different steps
        assert {k: v["switch_step"] for k, v in results["modes"].items()} == expected
        assert len(results["boundary_effect"]) == 4  # latent, x0, layer0, layer1
        assert all("switch 1 → peak" in line for line in results["boundary_effect"])
        (contrast,) = results["switch_contrast"]
        assert (contrast["boundary"], contrast["reference"], contrast["switch"]) == (950, 875, 1)
        assert [r["at"] for r in contrast["rows"]] == [0, 1]
        assert "switch at step 1 minus switch at step 2" in (tmp_path / name / "report.md").read_text()
    assert (tmp_path / name / "report.html").stat().st_size > 1000


def test_switch_contrast_finds_a_change_between_the_switches_only():
    from cos_jax.experiments.propagation_report import _contrast_line, switch_contrast

    n, ones = 40, np.ones(40)
    records = {}
    switches = {875.0: 21, 900.0: 18}
    for b in switches:
        for at in (15, 19, 25):
            worse = b == 900.0 and at == 19  # the moved switch makes injections at step 19 fail
            records[f"{b}-{at}"] = {"params": {"mode": "replace", "boundary": b, "at": at},
                                    "success_clean": ones, "success": 0 * ones if worse else ones,
                                    "cka_x0": np.full((n, 3), 0.5 if worse else 0.9)}  # fmt: skip
    sweeps = {f"replace @ boundary {b:g}": {"mode": "replace", "boundary": b, "switch_step": s,
                                            "inject_steps": [15, 19, 25]} for b, s in switches.items()}  # fmt: skip
    config = {"modes": ["replace"], "boundary": 875.0}
    (contrast,) = switch_contrast(config, records, sweeps)
    by_step = {r["at"]: r for r in contrast["rows"]}
    assert by_step[19]["success_drop"][0] == 1.0 and by_step[19]["x0"][0] == pytest.approx(0.4)
    assert by_step[15]["success_drop"] == [0.0, 0.0, 0.0] == by_step[25]["success_drop"]
    line = _contrast_line(contrast)
    assert "changes at s_t = 19 (+1.000" in line and "1 of 1 between the switches (18 ≤ s_t < 21)" in line


def test_blind_video_self_correction_and_frames_read():
    from cos_jax.experiments.exploration import self_correction
    from cos_jax.experiments.perturb import blind_video, frames_read
    from cos_jax.tasks import get_task

    video = np.arange(6)[:, None, None, None] * np.ones((6, 2, 2, 3), np.uint8)
    assert blind_video(video, [4, 5])[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 3, 3]
    assert blind_video(video, [0])[:, 0, 0, 0].tolist() == [1, 1, 2, 3, 4, 5]
    acts = np.array([[0.0, 0.9], [0.2, 0.8], [0.9, 0.1], [1.0, 0.0]])  # wrong (1) leads until step 1
    assert self_correction(acts, [0], 0.15) == 1
    assert self_correction(acts, [1], 0.15) is None  # the final answer is wrong
    assert self_correction(acts[2:], [0], 0.15) is None  # never led by a wrong candidate
    task = get_task("select_next")
    sample = task.generate_for_split("test", 0, 2, 32, 17)
    assert frames_read(task, [sample]) == [16]  # the scorer reads the last frame only


def test_emergent_memory_change_is_paired_per_sample():
    from cos_jax.experiments.emergent_report import summarise

    first = np.array([1.0, 1.0, 0.5, 0.5])
    last = first - np.array([0.5, 0.0, 0.5, 0.0])  # two samples lose half their cells, two keep them
    memory = np.stack([first, np.full(4, 0.7), last], 1)
    nan = np.full((4, 3), np.nan)
    record = {"params": {"entry": "permanence"}, "static": nan, "moving": nan, "memory": memory, "presence": memory}
    entry = summarise({"settle": 0.02}, {}, {"p": record})["tasks"]["permanence"]
    assert entry["memory_change"][0] == pytest.approx(-0.25)
    assert entry["memory_change"][1] <= -0.25 <= entry["memory_change"][2]
    assert entry["n_both_regions"] == 0 and "static_settle" not in entry
