"""`cos-jax convert` / `cos-jax validate` end to end on a tiny A14B-style folder with a DiffSynth LoRA pair."""

import argparse

import pytest

pytest.importorskip("diffusers")

import ckpt_writers as cw

from cos_jax.convert import reference
from cos_jax.convert.cli import add_commands
from cos_jax.convert.parity import PARITY_CASES

CFG = PARITY_CASES[1].config


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cos-jax")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def a14b(tmp_path_factory):
    root = tmp_path_factory.mktemp("a14b")
    high, low = (reference.random_reference_dit(CFG, seed=s) for s in (21, 22))
    cw.write_official_a14b(str(root / "src"), high, low, CFG)
    cw.write_diffsynth_lora(str(root / "high.safetensors"), CFG, rank=4, seed=3)
    cw.write_diffsynth_lora(str(root / "low.safetensors"), CFG, rank=4, seed=4)
    other = reference.random_reference_dit(CFG, seed=23)
    cw.write_official_a14b(str(root / "other"), other, other, CFG)
    return root


def test_convert_then_validate(a14b, capsys):
    loras = ["--lora-high", str(a14b / "high.safetensors"), "--lora-low", str(a14b / "low.safetensors")]
    assert _run(["convert", str(a14b / "src"), str(a14b / "out"), *loras, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "high_noise" in out and "MB/s" in out and "boundary_ratio 0.9" in out
    # bf16 checkpoint: the reference gets the same bf16-rounded (LoRA-merged) weights
    assert _run(["validate", str(a14b / "src"), "--converted", str(a14b / "out"), *loras, "--per-block"]) == 0
    out = capsys.readouterr().out
    assert "high_noise" in out and "low_noise" in out and "block   1" in out and "all passed" in out
    assert _run(["validate", str(a14b / "src"), "--converted", str(a14b / "out"), *loras, "--layers", "1"]) == 0
    # block by block, both experts, LoRAs merged on the reference side per block
    assert _run(["validate", str(a14b / "src"), "--converted", str(a14b / "out"), *loras, "--stream"]) == 0
    assert "block by block" in capsys.readouterr().out
    # forgetting the LoRA is an error, not a silent mismatch
    with pytest.raises(ValueError, match=r"has the LoRA high\.safetensors merged"):
        _run(["validate", str(a14b / "src"), "--converted", str(a14b / "out")])


def test_validate_fails_on_a_mismatch(a14b, capsys):
    """A converted checkpoint compared with the wrong source must fail (the check can fail)."""
    assert _run(["convert", str(a14b / "other"), str(a14b / "out_other"), "--quiet", "--dtype", "fp32"]) == 0
    assert (
        _run(["validate", str(a14b / "src"), "--converted", str(a14b / "out_other"), "--component", "low_noise"]) == 1
    )
    assert "FAIL" in capsys.readouterr().out


def test_validate_in_memory_without_converting(a14b, capsys):
    assert _run(["validate", str(a14b / "src"), "--component", "high_noise", "--latent", "1,4,6"]) == 0


def test_validate_diffusers_ti2v_folder(tmp_path, capsys):
    """A single-transformer diffusers folder of a TI2V model (per-token timesteps)."""
    case = PARITY_CASES[2]
    cw.write_diffusers_pipeline(str(tmp_path / "src"), reference.random_reference_dit(case.config, seed=31))
    assert _run(["convert", str(tmp_path / "src"), str(tmp_path / "out"), "--quiet", "--dtype", "fp32"]) == 0
    assert _run(["validate", str(tmp_path / "src"), "--converted", str(tmp_path / "out"), "--latent", "3,4,6"]) == 0
    assert "dit " in capsys.readouterr().out
