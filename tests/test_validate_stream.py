"""Block-by-block validation (`cos-jax validate --stream`): agrees with the whole-model validation on tiny
random checkpoints of several layouts, and names the block whose tensor was corrupted in the file."""

import json

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("diffusers")

import ckpt_writers as cw
from safetensors.numpy import load_file, save_file
from test_convert_cli import _run

from cos_jax.convert import reference
from cos_jax.convert.convert import convert_checkpoint
from cos_jax.convert.parity import PARITY_CASES
from cos_jax.convert.validate import validate

I2V3 = PARITY_CASES[1].config.replace(num_layers=3)
LATENT = (3, 4, 6)


def _agree(whole, streamed, rtol: float) -> None:
    """Same output and chained per-block errors (up to float noise, or `rtol` when they are large)."""
    assert streamed.layers == whole.layers
    np.testing.assert_allclose(streamed.relative, whole.relative, rtol=rtol, atol=3e-7)
    np.testing.assert_allclose(streamed.per_block, whole.per_block, rtol=rtol, atol=3e-7)


def _corrupt(folder, name: str) -> None:
    """Add noise to one tensor inside its shard of an official sharded checkpoint."""
    with open(folder / cw.SHARD_INDEX) as f:
        shard = folder / json.load(f)["weight_map"][name]
    tensors = load_file(shard)
    tensors[name] = tensors[name] + np.random.default_rng(0).normal(0, 0.05, tensors[name].shape).astype(np.float32)
    save_file(tensors, shard)


def test_streamed_names_the_bad_block_and_matches_whole_model(tmp_path, capsys):
    ref = reference.random_reference_dit(I2V3, seed=41)
    cw.write_official_sharded(str(tmp_path / "src"), ref, I2V3)
    convert_checkpoint(tmp_path / "src", tmp_path / "out", dtype="fp32", progress=False)
    args = (str(tmp_path / "src"), str(tmp_path / "out"))
    # the source no longer matches the converted checkpoint in one tensor of block 1
    _corrupt(tmp_path / "src", "blocks.1.ffn.2.weight")
    (whole,) = validate(*args, per_block=True, latent=LATENT)
    (streamed,) = validate(*args, stream=True, latent=LATENT)
    assert whole.relative > 1e-3
    _agree(whole, streamed, rtol=1e-3)
    assert set(streamed.isolated) == {
        "patch_embedding", "text_embedding", "time_projection", "block 0", "block 1", "block 2", "head",
    }  # fmt: skip
    assert streamed.failures(1e-4) == ["block 1", "output"]
    assert streamed.isolated["block 2"] < 1e-5  # fed the reference's input, block 2 is fine
    capsys.readouterr()
    assert _run(["validate", args[0], "--converted", args[1], "--stream", "--latent", "3,4,6"]) == 1
    out = capsys.readouterr().out
    assert "block 1 " in out and "FAIL: block 1, output" in out and "block 2 " not in out


@pytest.mark.parametrize("layout", ["diffusers_ti2v", "single_file_bf16"])
def test_streamed_matches_whole_model_other_layouts(tmp_path, layout):
    """A diffusers TI2V folder (per-token timesteps) and a prefixed bf16 single file, validated in memory."""
    if layout == "diffusers_ti2v":
        cfg = PARITY_CASES[2].config
        cw.write_diffusers_pipeline(str(tmp_path / "src"), reference.random_reference_dit(cfg, seed=42))
        src = tmp_path / "src"
    else:
        cfg = PARITY_CASES[0].config
        src = tmp_path / "wan.safetensors"
        cw.write_single_file(str(src), reference.random_reference_dit(cfg, seed=43), dtype=ml_dtypes.bfloat16)
        with open(tmp_path / "config.json", "w") as f:
            json.dump({"num_heads": cfg.num_heads, "model_type": "t2v"}, f)
    (whole,) = validate(str(src), per_block=True, latent=LATENT)
    (streamed,) = validate(str(src), stream=True, latent=LATENT)
    _agree(whole, streamed, rtol=0.5)
    assert streamed.ok(1e-5)
