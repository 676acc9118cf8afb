"""Corrupt or mismatched inputs give errors that name the bad input; failed conversions leave nothing."""

import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("diffusers")

import ckpt_writers as cw
from safetensors.numpy import load_file, save_file

import cos_jax
from cos_jax.convert import checkpoint, reference
from cos_jax.convert.convert import convert_checkpoint
from cos_jax.convert.dit_config import WrongModelKindError
from cos_jax.convert.dit_keys import KeyMismatchError
from cos_jax.convert.lora import LoraMismatchError
from cos_jax.convert.parity import PARITY_CASES
from cos_jax.convert.safetensors_io import CorruptCheckpointError

CFG = PARITY_CASES[1].config  # i2v, 2 layers


@pytest.fixture(scope="module")
def ref_model():
    return reference.random_reference_dit(CFG, seed=11)


@pytest.fixture
def src(tmp_path, ref_model):
    folder = tmp_path / "src"
    cw.write_official_sharded(str(folder), ref_model, CFG)
    return folder


def _convert(src, out, **kw):
    return convert_checkpoint(src, out, progress=False, **kw)


def test_missing_shard(src, tmp_path):
    os.remove(src / "diffusion_pytorch_model-00002-of-00003.safetensors")
    with pytest.raises(CorruptCheckpointError, match=r"1 of 3 shards are missing: diffusion_pytorch_model-00002"):
        _convert(src, tmp_path / "out")


def test_truncated_safetensors(src, tmp_path):
    shard = src / "diffusion_pytorch_model-00003-of-00003.safetensors"
    size = os.path.getsize(shard)
    with open(shard, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(CorruptCheckpointError, match=r"00003-of-00003.safetensors: truncated: tensor .* ends at byte"):
        _convert(src, tmp_path / "out")
    with open(shard, "r+b") as f:
        f.truncate(5)
    with pytest.raises(CorruptCheckpointError, match="too short to be a safetensors file"):
        _convert(src, tmp_path / "out")


def test_missing_and_unexpected_tensors_are_named(tmp_path, ref_model):
    state = cw.official_state(ref_model)
    state.pop("blocks.1.cross_attn.k.weight")
    state["blocks.0.cross_attn.k_img.weight"] = np.zeros((2, 2), np.float32)
    save_file(state, tmp_path / "dit.safetensors")
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"num_heads": 2, "model_type": "i2v"}, f)
    with pytest.raises(
        KeyMismatchError, match=r"official layout: 1 missing tensors \[blocks\.1\.cross_attn\.k\.weight\], 1 unexpected"
    ):
        _convert(tmp_path / "dit.safetensors", tmp_path / "out")


def test_wrong_shapes_are_named(tmp_path, ref_model):
    state = cw.official_state(ref_model)
    state["blocks.1.self_attn.q.weight"] = np.zeros((48, 47), np.float32)
    save_file(state, tmp_path / "dit.safetensors")
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"num_heads": 2, "model_type": "i2v"}, f)
    with pytest.raises(
        KeyMismatchError, match=r"official layout: 1 tensors have the wrong shape.*self_attn\.q\.weight"
    ):
        _convert(tmp_path / "dit.safetensors", tmp_path / "out")


def test_config_json_disagreeing_with_tensors(src, tmp_path):
    with open(src / "config.json", "w") as f:
        json.dump({"_class_name": "WanModel", "model_type": "i2v", "num_heads": 2, "ffn_dim": 96}, f)
    with pytest.raises(WrongModelKindError, match=r"config\.json says ffn_dim=96 but the tensors have ffn_dim=64"):
        _convert(src, tmp_path / "out")


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"_class_name": "AutoencoderKLWan"}, "describes a AutoencoderKLWan, not a Wan DiT"),
        ({"_class_name": "WanModel", "model_type": "s2v"}, "model_type='s2v' is not supported"),
        ({"num_attention_heads": 2, "attention_head_dim": 24, "image_dim": 1280}, "Wan2.1 I2V"),
    ],
)
def test_wrong_model_kind_from_config(src, tmp_path, config, match):
    with open(src / "config.json", "w") as f:
        json.dump(config, f)
    with pytest.raises(WrongModelKindError, match=match):
        _convert(src, tmp_path / "out")


def test_wrong_model_kind_from_tensors(tmp_path):
    save_file({"encoder.conv1.weight": np.zeros((4, 3, 3, 3, 3), np.float32)}, tmp_path / "Wan2.1_VAE.safetensors")
    with pytest.raises(WrongModelKindError, match="looks like a VAE checkpoint"):
        _convert(tmp_path / "Wan2.1_VAE.safetensors", tmp_path / "out")


def _lora(tmp_path, edit):
    tensors = cw.write_diffsynth_lora(str(tmp_path / "lora.safetensors"), CFG, rank=4)
    edit(tensors)
    save_file(tensors, tmp_path / "lora.safetensors")
    return tmp_path / "lora.safetensors"


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t.update({"blocks.0.ffn.0.lora_A.default.weight": np.zeros((3, 48), np.float32)}), "rank mismatch"),
        (
            lambda t: t.update({"blocks.1.ffn.2.lora_B.default.weight": np.zeros((64, 4), np.float32)}),
            r"B @ A is \(64, 64\) but the weight blocks.\{i\}.ffn.2.weight is \(48, 64\)",
        ),
        (
            lambda t: t.update(
                {
                    "blocks.0.norm3.lora_B.default.weight": np.zeros((48, 4), np.float32),
                    "blocks.0.norm3.lora_A.default.weight": np.zeros((4, 48), np.float32),
                }
            ),
            "'blocks.0.norm3' is not a linear layer",
        ),
        (
            lambda t: t.update(
                {
                    "blocks.5.self_attn.q.lora_B.default.weight": np.zeros((48, 4), np.float32),
                    "blocks.5.self_attn.q.lora_A.default.weight": np.zeros((4, 48), np.float32),
                }
            ),
            "block index 5 does not exist in a 2-layer model",
        ),
        (lambda t: t.pop("blocks.1.self_attn.v.lora_A.default.weight"), "down matrix .* is missing"),
        (lambda t: t.update({"text_encoder.scale": np.ones(1, np.float32)}), "1 tensors not part of any usable pair"),
    ],
)
def test_lora_that_does_not_fit(src, tmp_path, edit, match):
    with pytest.raises(LoraMismatchError, match=match):
        _convert(src, tmp_path / "out", lora=_lora(tmp_path, edit))
    assert not os.path.exists(tmp_path / "out")


def test_lora_flags_must_match_the_experts(src, tmp_path):
    lora = _lora(tmp_path, lambda t: None)
    with pytest.raises(LoraMismatchError, match="no high_noise expert"):
        _convert(src, tmp_path / "out", lora_high=lora)


def test_existing_output_is_not_overwritten(src, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        _convert(src, tmp_path / "out")


def test_interrupted_conversion_leaves_nothing_complete(src, tmp_path, monkeypatch):
    calls = []
    real = checkpoint.save_params_partial

    def flaky(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(checkpoint, "save_params_partial", flaky)
    with pytest.raises(KeyboardInterrupt):
        _convert(src, tmp_path / "out", batch_bytes=20_000)
    assert sorted(os.listdir(tmp_path)) == ["src"]
    # a folder left behind by a killed process is refused by the loader
    (tmp_path / "out.incomplete-123").mkdir()
    with pytest.raises(FileNotFoundError, match="interrupted conversion"):
        cos_jax.load(tmp_path / "out.incomplete-123")
    # the next conversion removes leftovers of dead processes (this pid is above Linux's pid_max) and succeeds
    dead = tmp_path / f"out.incomplete-{2**22 + 12345}"
    dead.mkdir()
    _convert(src, tmp_path / "out")
    assert not dead.exists() and (tmp_path / "out" / "manifest.json").exists()


def test_pth_without_torch_is_explained(tmp_path, monkeypatch):
    (tmp_path / "dit.pth").write_bytes(b"\x80\x02")
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"num_heads": 2}, f)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="reading it needs torch"):
        _convert(tmp_path / "dit.pth", tmp_path / "out")


def test_index_and_shards_must_agree(src, tmp_path):
    shard = src / "diffusion_pytorch_model-00001-of-00003.safetensors"
    tensors = load_file(shard)
    tensors.pop(sorted(tensors)[0])
    save_file(tensors, shard)
    with pytest.raises(CorruptCheckpointError, match="the index and the shards disagree: 1 indexed tensors"):
        _convert(src, tmp_path / "out")


def test_cli_turns_bad_inputs_into_one_line(src, tmp_path, capsys):
    """`cos-jax convert` on a missing path, an empty folder, a garbage file, a missing LoRA or a LoRA of the
    wrong rank: `error: …`, status 2, no output."""
    from cos_jax.cli import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "garbage.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
    bad_rank = _lora(tmp_path, lambda t: t.update({"blocks.0.ffn.0.lora_A.default.weight": np.zeros((3, 48))}))
    for args, message in (([tmp_path / "missing"], "no such file or folder"),
                          ([tmp_path / "empty"], "no *.safetensors"),
                          ([tmp_path / "garbage.safetensors"], "garbage.safetensors"),
                          ([src, "--lora", tmp_path / "nolora.safetensors"], "nolora.safetensors"),
                          ([src, "--lora", bad_rank], "rank mismatch")):  # fmt: skip
        assert main(["convert", *map(str, args), str(tmp_path / "out"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()
