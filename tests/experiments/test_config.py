"""Experiment configs: flat TOML, typed `--set` overrides, clear errors naming the bad key or value."""

from pathlib import Path

import pytest

from cos_jax.experiments.config import ExperimentError, command_line, load_config, parse_value

CONFIGS = sorted(Path(__file__).parents[2].glob("configs/*/*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_loads_and_names_its_command(path):
    config = load_config(path)
    assert config["experiment"] == path.stem
    assert command_line(path).startswith(f"cos-jax experiment run {path.parent.parent.name}/{path.parent.name}/")


def test_overrides_are_typed():
    config = load_config(CONFIGS[0], ["per_task=8", "guidance=4", "tasks=['maze']", "policy=bf16"])
    assert config["per_task"] == 8 and config["guidance"] == 4.0 and isinstance(config["guidance"], float)
    assert config["tasks"] == ["maze"] and config["policy"] == "bf16"
    assert parse_value("[1, 2]") == [1, 2] and parse_value("toy") == "toy"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["per_taks=8"], "unknown key 'per_taks' for experiment"),
        (["per_task=eight"], "per_task = 'eight' should be int"),
        (["per_task"], "bad --set 'per_task': expected key=value"),
        (["experiment=nothing"], "unknown experiment 'nothing'; choose one of"),
        (["per_task=0"], "per_task = 0 must be >= 1"),
        (["policy=fp16"], "policy = 'fp16'; choose 'fp32' or 'bf16'"),
        (["vae_precision=bf16"], "vae_precision = 'bf16'; choose 'fp32' or 'tf32'"),
    ],
)
def test_bad_overrides_name_the_key(sets, message):
    with pytest.raises(ExperimentError, match=message):
        load_config(CONFIGS[0], sets)


def test_bad_files(tmp_path):
    with pytest.raises(ExperimentError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    (tmp_path / "nested.toml").write_text('experiment = "perturb"\n[sweep]\nalphas = [1.0]\n')
    with pytest.raises(ExperimentError, match=r"flat key = value files; move the keys of \[sweep\] up"):
        load_config(tmp_path / "nested.toml")
    (tmp_path / "bad.toml").write_text("experiment = \n")
    with pytest.raises(ExperimentError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
