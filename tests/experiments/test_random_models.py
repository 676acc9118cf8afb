"""The random I2V-A14B model sources (`random:tiny-i2v-a14b` here; `random:i2v-a14b` is the same code at full
size): loaded without a checkpoint folder and run through the experiment runner like a folder."""

import json
from pathlib import Path

import pytest

from cos_jax.cli import main
from cos_jax.experiments.config import ExperimentError, load_config
from cos_jax.experiments.models import RANDOM_MODELS, load_model
from cos_jax.experiments.runner import run

ROOT = Path(__file__).parents[2]
PERTURB = ROOT / "configs/vbvr_wan22/perturb.toml"
MINIMAL = ["per_task=1", "tasks=['select_next']", "start=0", "resolution=32", "frames=9", "steps=2", "batch=1",
           "noise_steps=[1]", "noise_frames=[2]", "alphas=[1.0]", "modes=['renoise']", "calibrate_modes=[]",
           "vae_precision='tf32'"]  # fmt: skip


def test_random_tiny_i2v_a14b_runs_a_perturb_sweep(tmp_path):
    model = load_model("random:tiny-i2v-a14b", resolution=32, frames=9, vae_precision="tf32")
    assert (model.kind, len(model.experts), model.latent_shape) == ("i2v-a14b", 2, (3, 8, 8, 16))
    assert model.backend.vae_config.conv_precision == "default"  # tf32, as a folder's VAE would be
    assert model.experts[0].config == model.experts[1].config
    out = tmp_path / "perturb"
    results = run(load_config(PERTURB, MINIMAL), out, progress=False, model=model)
    saved = json.loads((out / "results.json").read_text())
    assert saved["model"] == results["model"]
    assert saved["model"]["name"] == "random:tiny-i2v-a14b" and saved["model"]["kind"] == "i2v-a14b"
    assert saved["model"]["experts"] == 2 and saved["model"]["weights"].startswith("random")
    assert saved["num_samples"] == 1 and len(list((out / "points").iterdir())) == 3  # clean, step, frame


def test_an_unknown_random_model_names_the_choices(capsys):
    with pytest.raises(ExperimentError, match="unknown random model 'random:nonsense'") as err:
        load_model("random:nonsense")
    assert all(name in str(err.value) for name in RANDOM_MODELS)
    assert main(["experiment", "run", str(PERTURB), "--model", "random:nonsense"]) == 2
    line = capsys.readouterr().err
    assert line.startswith("error: unknown random model") and len(line.strip().splitlines()) == 1
