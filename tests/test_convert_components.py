"""VAE, umT5 text encoder and tokenizer as components of `cos-jax convert`: tiny random official and diffusers
folders -> convert -> cos_jax.load -> outputs equal diffusers' AutoencoderKLWan and transformers'
UMT5EncoderModel (fp32, ≤ 1e-5 relative)."""

import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import ckpt_writers as cw
import torch
import transformers
from test_convert_cli import _run

import cos_jax
from cos_jax.convert import reference, vae_reference
from cos_jax.convert.convert import convert_checkpoint
from cos_jax.convert.dit_keys import KeyMismatchError
from cos_jax.convert.parity import PARITY_CASES
from cos_jax.convert.vae_keys import vae_to_state_dict
from cos_jax.wan.t5 import T5Config, UMT5Encoder
from cos_jax.wan.text import PromptTokenizer
from cos_jax.wan.vae import WanVAE, vae_decode, vae_encode, vae_preset

TOL = 1e-5
T5 = T5Config(vocab_size=64, dim=32, head_dim=8, num_heads=4, ffn_dim=48, num_layers=2)
VAES = {"wan21": vae_preset("wan21").small(8), "wan22": vae_preset("wan22").small(8, 16)}
PROMPTS = ["a red ball bounces off the wall", "solve the maze"]


def _rel(got, expected) -> float:
    return float(np.abs(np.asarray(got) - expected).max() / np.abs(expected).max())


def _t5_reference(seed: int, bf16: bool = False):
    torch.manual_seed(seed)
    hf = transformers.UMT5Config(vocab_size=T5.vocab_size, d_model=T5.dim, d_kv=T5.head_dim, d_ff=T5.ffn_dim,
                                 num_layers=T5.num_layers, num_heads=T5.num_heads,
                                 feed_forward_proj="gated-gelu")  # fmt: skip
    model = transformers.UMT5EncoderModel(hf).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
            if bf16:  # the official umT5 file is bf16
                p.copy_(p.to(torch.bfloat16).float())
    return model


def _check_vae(model: WanVAE, ref, cfg) -> None:
    """Weights equal the reference's exactly; encode and decode (5 frames: time convs run) match it."""
    assert isinstance(model, WanVAE) and model.config == cfg
    want = reference.state_dict_numpy(ref)
    got = vae_to_state_dict(model, "diffusers")
    assert got.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    rng = np.random.default_rng(0)
    size = 2 * cfg.spatial_stride
    video = rng.uniform(-1, 1, (1, 3, 5, size, size)).astype(np.float32)
    latents = rng.normal(size=(1, cfg.z_dim, 2, 2, 2)).astype(np.float32)
    to_jax = lambda x: jnp.asarray(x.transpose(0, 2, 3, 4, 1))
    to_torch = lambda x: np.asarray(x).transpose(0, 4, 1, 2, 3)
    # unchunked: compiles faster; chunked == unchunked is tested in test_vae.py
    encoded = to_torch(vae_encode(model, to_jax(video), chunked=False))
    assert _rel(encoded, vae_reference.reference_encode(ref, cfg, video)) <= TOL
    decoded = to_torch(vae_decode(model, to_jax(latents), chunked=False))
    assert _rel(decoded, vae_reference.reference_decode(ref, cfg, latents)) <= TOL


def _check_text(model: UMT5Encoder, ref, tokenizer: str) -> None:
    """Prompts through the copied tokenizer and the converted encoder equal transformers' encoder."""
    assert isinstance(model, UMT5Encoder) and model.config == T5
    ids, mask = PromptTokenizer(tokenizer, max_length=12)(PROMPTS)
    assert mask.sum(1).tolist() == [8, 4]  # words + </s>
    with torch.no_grad():
        out = ref(input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long())
    expected = out.last_hidden_state.numpy() * mask[..., None]
    assert _rel(model(jnp.asarray(ids), jnp.asarray(mask)), expected) <= TOL


def test_official_folder_with_wan22_vae_and_bf16_umt5(tmp_path):
    """A TI2V-5B-style official folder: DiT shards at the root, Wan2.2_VAE.pth, the bf16 umT5 .pth, google/umt5-xxl/."""
    cfg = PARITY_CASES[2].config
    cw.write_official_sharded(str(tmp_path / "src"), reference.random_reference_dit(cfg, seed=51), cfg)
    vae, t5 = vae_reference.random_reference_vae(VAES["wan22"], seed=52), _t5_reference(53, bf16=True)
    cw.write_official_extras(str(tmp_path / "src"), vae, VAES["wan22"], t5, T5.num_layers)
    manifest = convert_checkpoint(tmp_path / "src", tmp_path / "out", dtype="fp32", progress=False)
    comps = manifest["components"]
    assert list(comps) == ["dit", "vae", "text_encoder", "tokenizer"]
    assert comps["vae"] | {"config": None} == {
        "kind": "wan_vae", "path": "vae", "layout": "official", "config": None, "preset": None, "dtype": "float32",
        "source_files": ["Wan2.2_VAE.pth"], "tensors": 196, "parameters": sum(p.numel() for p in vae.parameters()),
    }  # fmt: skip
    assert comps["text_encoder"]["kind"] == "umt5_encoder" and comps["text_encoder"]["tensors"] == 1 + 10 * 2 + 1
    assert comps["tokenizer"]["source_files"] == [
        os.path.join("google", "umt5-xxl", f) for f in ("special_tokens_map.json", "spiece.model", "tokenizer.json")
    ]
    loaded = cos_jax.load(tmp_path / "out")
    assert loaded.dit.config == cfg and loaded.experts.keys() == {"dit"} and loaded.boundary_ratio is None
    _check_vae(loaded.vae, vae, VAES["wan22"])
    _check_text(loaded.text_encoder, t5, loaded.tokenizer)
    assert sorted(os.listdir(loaded.tokenizer)) == ["special_tokens_map.json", "spiece.model", "tokenizer.json"]


def test_diffusers_folder_with_wan21_vae_bf16_text_encoder(tmp_path, capsys):
    """A diffusers pipeline folder: the text encoder stored in bf16 (the default), the VAE in fp32; one
    component loads by name or by folder, a subset as WanComponents."""
    root = tmp_path / "src"
    cw.write_diffusers_pipeline(str(root), reference.random_reference_dit(PARITY_CASES[0].config, seed=54))
    vae, t5 = vae_reference.random_reference_vae(VAES["wan21"], seed=55), _t5_reference(56)
    cw.write_diffusers_extras(str(root), vae, t5)
    assert _run(["convert", str(root), str(tmp_path / "out"), "--components", "vae,text", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "vae          diffusers float32  preset=None tensors=194" in printed and "dit " not in printed
    manifest = cos_jax.convert.read_manifest(tmp_path / "out")
    assert list(manifest["components"]) == ["vae", "text_encoder", "tokenizer"]
    assert manifest["components"]["text_encoder"]["dtype"] == "bfloat16"
    _check_vae(cos_jax.load(tmp_path / "out" / "vae"), vae, VAES["wan21"])
    text = cos_jax.load(tmp_path / "out", ("text_encoder", "tokenizer"), param_dtype=jnp.float32)
    assert text.vae is None and text.dit is None
    with torch.no_grad():  # the reference with the same bf16-rounded weights
        for p in t5.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    _check_text(text.text_encoder, t5, text.tokenizer)


def _rewrite(path, edit) -> None:
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


def test_strict_errors_name_the_file_keys_layout_and_what_was_looked_for(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    vae = vae_reference.random_reference_vae(VAES["wan21"], seed=57)
    cw.write_official_extras(str(src), vae, VAES["wan21"], _t5_reference(58), T5.num_layers)
    convert = lambda components: convert_checkpoint(src, tmp_path / "out", components=components, progress=False)
    with pytest.raises(ValueError, match="unknown component 'unet'; choose from dit, vae, text"):
        convert("unet")
    shutil.rmtree(src / "google")
    with pytest.raises(FileNotFoundError, match=r"no tokenizer found; looked for google/umt5-xxl/ \(official\)"):
        convert("text")
    cw.write_tokenizer(str(src / "google" / "umt5-xxl"))
    _rewrite(src / "Wan2.1_VAE.pth", lambda s: s.pop("decoder.head.2.bias"))
    with pytest.raises(KeyMismatchError, match=r"Wan2\.1_VAE\.pth: VAE official layout: 1 missing tensors \[decoder"):
        convert("vae")
    os.remove(src / "Wan2.1_VAE.pth")
    with pytest.raises(FileNotFoundError, match=r"no vae found; looked for Wan2\.1_VAE\.pth / Wan2\.2_VAE\.pth"):
        convert("vae,text")
    t5_file = src / "models_t5_umt5-xxl-enc-bf16.pth"
    _rewrite(t5_file, lambda s: s.update({"blocks.1.ffn.fc2.weight": torch.zeros(T5.dim, T5.ffn_dim + 1)}))
    with pytest.raises(
        KeyMismatchError, match=r"umT5 official layout: 1 tensors have the wrong shape.*blocks\.1\.ffn\.fc2"
    ):
        convert("text")
    assert sorted(os.listdir(tmp_path)) == ["src"]  # nothing written
