"""Conversion round trips: tiny random checkpoints in every layout -> Orbax -> cos_jax.load -> forward equals
the PyTorch reference (diffusers WanTransformer3DModel, fp32, official timestep sinusoid)."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("diffusers")

import ckpt_writers as cw
import jax
import ml_dtypes
import torch

import cos_jax
from cos_jax.convert import reference
from cos_jax.convert.convert import convert_checkpoint
from cos_jax.convert.load import dit_to_state_dict
from cos_jax.convert.parity import PARITY_CASES, cos_forward
from cos_jax.parallel import make_mesh, param_shardings

TOL = 1e-5
I2V = PARITY_CASES[1]  # i2v 36->16, 2 layers, dim 48
T2V = PARITY_CASES[0]


def _rel(got, expected) -> float:
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def _check(model, ref_model, case, batch=1):
    inputs = reference.random_inputs(case.config, batch, case.latent, seed=5)
    rel = _rel(cos_forward(model, inputs), reference.reference_forward(ref_model, inputs))
    assert rel <= TOL, rel


def _check_weights(model, ref_model):
    """Every converted weight equals the PyTorch model's (cheaper than a forward: no compilation)."""
    got = dit_to_state_dict(model, "diffusers")
    want = reference.state_dict_numpy(ref_model)
    assert got.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-7, err_msg=key)


# DiffSynth (official) module names -> diffusers module names; written out here independently of the package.
_TO_DIFFUSERS = {
    "self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0", "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0", "ffn.0": "ffn.net.0.proj", "ffn.2": "ffn.net.2",
}  # fmt: skip


def merge_lora_torch(model, lora: dict, scale: float = 1.0) -> None:
    """The DiffSynth formula: W <- W + scale * B @ (A * alpha / rank if alpha else A), in torch."""
    with torch.no_grad():
        for key, b in lora.items():
            if ".lora_B." not in key:
                continue
            module = key.split(".lora_B.")[0]
            a = torch.from_numpy(lora[key.replace(".lora_B.", ".lora_A.")])
            alpha = lora.get(f"{module}.alpha")
            if alpha is not None:
                a = a * float(alpha) / a.shape[0]
            block, rest = module.split(".", 2)[1], module.split(".", 2)[2]
            weight = model.get_submodule(f"blocks.{block}.{_TO_DIFFUSERS[rest]}").weight
            weight += scale * (torch.from_numpy(b) @ a)


def test_official_sharded_folder(tmp_path):
    ref = reference.random_reference_dit(I2V.config, seed=1)
    cw.write_official_sharded(str(tmp_path / "src"), ref, I2V.config)
    manifest = convert_checkpoint(tmp_path / "src", tmp_path / "out", dtype="fp32", progress=False)
    assert manifest["components"]["dit"]["layout"] == "official"
    assert manifest["components"]["dit"]["tensors"] == 69 and manifest["dtype"] == "float32"
    _check(cos_jax.load(tmp_path / "out").dit, ref, I2V, batch=2)
    assert not [p for p in os.listdir(tmp_path) if ".incomplete-" in p]


def test_official_a14b_with_diffsynth_lora_pair(tmp_path):
    """Both experts, each with its own DiffSynth-style LoRA (one with alpha), merged during conversion."""
    cfg = I2V.config
    high, low = (reference.random_reference_dit(cfg, seed=s) for s in (2, 3))
    cw.write_official_a14b(str(tmp_path / "src"), high, low, cfg)
    lora_high = cw.write_diffsynth_lora(str(tmp_path / "high_noise_lora.safetensors"), cfg, rank=4, seed=1)
    lora_low = cw.write_diffsynth_lora(str(tmp_path / "low_noise_lora.safetensors"), cfg, rank=4, seed=2, alpha=2.0)
    manifest = convert_checkpoint(
        tmp_path / "src", tmp_path / "out", dtype="fp32", lora_scale=0.7, progress=False,
        lora_high=tmp_path / "high_noise_lora.safetensors", lora_low=tmp_path / "low_noise_lora.safetensors",
    )  # fmt: skip
    assert manifest["boundary_ratio"] == 0.9 and manifest["source_kind"] == "official_a14b"  # official I2V default
    assert manifest["components"]["high_noise"]["loras"][0]["pairs"] == cfg.num_layers * len(cw.LORA_MODULES)
    merge_lora_torch(high, lora_high, 0.7)
    merge_lora_torch(low, lora_low, 0.7)
    _check(cos_jax.load(tmp_path / "out", "high_noise"), high, I2V)
    _check_weights(cos_jax.load(tmp_path / "out" / "low_noise"), low)
    everything = cos_jax.load(tmp_path / "out")  # a WanComponents
    assert set(everything.experts) == {"high_noise", "low_noise"} and everything.boundary_ratio == 0.9
    assert everything.dit is None and everything.vae is None and everything.tokenizer is None
    with pytest.raises(KeyError, match="no component 'vae'"):
        cos_jax.load(tmp_path / "out", "vae")


def test_diffusers_pipeline_folder(tmp_path):
    cfg = T2V.config
    high, low = (reference.random_reference_dit(cfg, seed=s) for s in (4, 5))
    cw.write_diffusers_pipeline(str(tmp_path / "src"), high, low, boundary_ratio=0.875)
    assert os.path.exists(tmp_path / "src" / "transformer" / cw.SHARD_INDEX)  # really sharded
    manifest = convert_checkpoint(tmp_path / "src", tmp_path / "out", dtype="fp32", progress=False)
    assert manifest["boundary_ratio"] == 0.875 and manifest["source_kind"] == "diffusers_pipeline"
    assert manifest["components"]["low_noise"]["layout"] == "diffusers"
    _check(cos_jax.load(tmp_path / "out", "high_noise"), high, T2V)
    _check_weights(cos_jax.load(tmp_path / "out", "low_noise"), low)


def test_prefixed_single_file_bf16(tmp_path):
    """A ComfyUI-style repack in bf16: converted weights equal the bf16 source exactly (fp32 and bf16 output)."""
    cfg = T2V.config.replace(num_heads=1)  # dim 48: head_dim must come from somewhere; here a config.json
    ref = reference.random_reference_dit(T2V.config, seed=6)
    state = cw.write_single_file(str(tmp_path / "wan.safetensors"), ref, prefix=True, dtype=ml_dtypes.bfloat16)
    with pytest.raises(ValueError, match="num_heads is unknown"):
        convert_checkpoint(tmp_path / "wan.safetensors", tmp_path / "out", progress=False)
    del cfg
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"num_heads": T2V.config.num_heads, "model_type": "t2v"}, f)
    convert_checkpoint(tmp_path / "wan.safetensors", tmp_path / "out32", dtype="fp32", progress=False)
    convert_checkpoint(tmp_path / "wan.safetensors", tmp_path / "out16", progress=False)
    m32, m16 = cos_jax.load(tmp_path / "out32", "dit"), cos_jax.load(tmp_path / "out16", "dit")
    assert m16.blocks.ffn_up.kernel.dtype == jax.numpy.bfloat16
    want = state["blocks.1.ffn.0.weight"].astype(np.float32).T
    np.testing.assert_array_equal(np.asarray(m32.blocks.ffn_up.kernel[1]), want)
    np.testing.assert_array_equal(np.asarray(m16.blocks.ffn_up.kernel[1]).astype(np.float32), want)
    # the forward matches a reference holding the same bf16-rounded weights
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    _check(m32, ref, T2V)


def test_pth_source(tmp_path):
    ref = reference.random_reference_dit(T2V.config, seed=7)
    torch.save({k: torch.from_numpy(v) for k, v in cw.official_state(ref).items()}, tmp_path / "dit.pth")
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"_class_name": "WanModel", "num_heads": 2, "model_type": "t2v"}, f)
    convert_checkpoint(tmp_path / "dit.pth", tmp_path / "out", dtype="fp32", progress=False)
    _check_weights(cos_jax.load(tmp_path / "out").dit, ref)


def test_restore_into_mesh_shardings(tmp_path):
    """Parameters land directly in their target NamedShardings on an 8-device mesh."""
    ref = reference.random_reference_dit(I2V.config, seed=8)
    cw.write_official_sharded(str(tmp_path / "src"), ref, I2V.config)
    convert_checkpoint(tmp_path / "src", tmp_path / "out", dtype="fp32", progress=False)
    mesh = make_mesh("fsdp=4,tensor=2")
    model = cos_jax.load(tmp_path / "out", "dit", mesh=mesh)
    want = param_shardings(model, mesh)
    for got, spec in ((model.blocks.ffn_up.kernel, want["blocks"]["ffn_up"]["kernel"]),
                      (model.blocks.self_attn.q.kernel, want["blocks"]["self_attn"]["q"]["kernel"])):  # fmt: skip
        assert got[...].sharding == spec and len(got[...].sharding.device_set) == 8
    assert want["blocks"]["ffn_up"]["kernel"].spec == jax.P(None, "fsdp", "tensor")
    with jax.set_mesh(mesh):
        _check(model, ref, I2V, batch=2)


def _to_diffusers_names(key: str) -> str:
    """blocks.3.self_attn.q.lora_A.default.weight -> transformer.blocks.3.attn1.to_q.lora_A.weight (alpha too)."""
    p = key.split(".")
    tail = ".".join(t for t in p[4:] if t != "default")
    return f"transformer.blocks.{p[1]}.{_TO_DIFFUSERS[p[2] + '.' + p[3]]}.{tail}"


def _to_kohya_names(key: str) -> str:
    """... -> diffusion_model.blocks.3.self_attn.q.lora_down.weight (alpha too)."""
    key = "diffusion_model." + key.replace(".default.", ".")
    return key.replace(".lora_A.", ".lora_down.").replace(".lora_B.", ".lora_up.")


@pytest.mark.parametrize("rename_key", [_to_diffusers_names, _to_kohya_names], ids=["diffusers-names", "up-down"])
def test_lora_key_variants(tmp_path, rename_key):
    """The same LoRA under diffusers module names / lora_up-lora_down + `diffusion_model.` gives the same merge."""
    from safetensors.numpy import save_file

    ref = reference.random_reference_dit(T2V.config, seed=9)
    cw.write_official_sharded(str(tmp_path / "src"), ref, T2V.config)
    lora = cw.write_diffsynth_lora(str(tmp_path / "ds.safetensors"), T2V.config, rank=3, seed=4, alpha=6.0)
    save_file({rename_key(k): v for k, v in lora.items()}, tmp_path / "lora.safetensors")
    convert_checkpoint(tmp_path / "src", tmp_path / "out", dtype="fp32", lora=tmp_path / "lora.safetensors",
                       progress=False)  # fmt: skip
    merge_lora_torch(ref, lora)
    _check(cos_jax.load(tmp_path / "out").dit, ref, T2V)
