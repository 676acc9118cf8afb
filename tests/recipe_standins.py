"""Tiny synthetic stand-ins for the released checkpoints that `convert/*.sh` recipes expect: the same
folder layout and key names at tiny width, and the expected manifest of each, counted from the PyTorch
modules that were saved (not by cos-jax)."""

from __future__ import annotations

import json
import os

import ckpt_writers as cw

from cos_jax.convert.reference import random_reference_dit
from cos_jax.convert.vae_reference import random_reference_vae
from cos_jax.pipelines.wan_reference import build_tiny_pipeline, random_reference_t5, tiny_spec

# recipe -> (tiny pipeline kind, layout, LoRA pair)
RECIPES = {
    "wan22_t2v_a14b": ("t2v-a14b", "official", False),
    "wan22_t2v_a14b_diffusers": ("t2v-a14b", "diffusers", False),
    "wan22_i2v_a14b": ("i2v-a14b", "official", False),
    "wan22_i2v_a14b_diffusers": ("i2v-a14b", "diffusers", False),
    "wan22_ti2v_5b": ("ti2v-5b", "official", False),
    "wan22_ti2v_5b_diffusers": ("ti2v-5b", "diffusers", False),
    "vbvr_wan22_lora": ("i2v-a14b", "official", True),
    "vbvr_wan22_diffusers": ("i2v-a14b", "diffusers", False),
}
LORA_RANK = 4


def module_counts(module) -> dict:
    """Tensors and parameters of a torch module as a checkpoint stores them (tied weights once)."""
    params = dict(module.named_parameters())
    return {"tensors": len(params), "parameters": sum(p.numel() for p in params.values())}


def write_standin(recipe: str, root: str) -> tuple[str, dict, list[str]]:
    """Write the stand-in of `recipe` under `root`; returns (SRC, the expected manifest, extra recipe args)."""
    kind, layout, with_loras = RECIPES[recipe]
    spec = tiny_spec(kind, full_vae=True)  # the released VAE block layout (official .pth files have no config)
    src = os.path.join(root, "src")
    if layout == "diffusers":
        _, pipe = build_tiny_pipeline(src, kind, full_vae=True)
        dits = [pipe.transformer] + ([pipe.transformer_2] if kind != "ti2v-5b" else [])
        vae, t5 = pipe.vae, pipe.text_encoder
    else:
        dits = [random_reference_dit(spec.dit, seed=s) for s in ((1,) if kind == "ti2v-5b" else (1, 2))]
        vae, t5 = random_reference_vae(spec.vae, seed=3), random_reference_t5(spec.t5, seed=4)
        if len(dits) == 2:
            cw.write_official_a14b(src, *dits, spec.dit)
        else:
            cw.write_official_sharded(src, dits[0], spec.dit)
        cw.write_official_extras(src, vae, spec.vae, t5, spec.t5.num_layers)
    names = ["high_noise", "low_noise"] if len(dits) == 2 else ["dit"]
    lora = {"lora_ranks": [LORA_RANK], "lora_pairs": len(cw.LORA_MODULES) * spec.dit.num_layers} if with_loras else {}
    components = {n: {"kind": "wan_dit", "layout": layout, "preset": None, **module_counts(m), **lora}
                  for n, m in zip(names, dits, strict=True)}  # fmt: skip
    components["vae"] = {"kind": "wan_vae", "layout": layout, "preset": None, **module_counts(vae)}
    components["text_encoder"] = {"kind": "umt5_encoder", "layout": layout, "preset": None, **module_counts(t5)}
    components["tokenizer"] = {"kind": "tokenizer"}
    expected = {"components": components}
    if spec.boundary_ratio is not None:
        expected["boundary_ratio"] = spec.boundary_ratio
    args = []
    if with_loras:
        loras = os.path.join(root, "loras")
        os.makedirs(loras)
        for name, seed in (("high_noise_lora", 5), ("low_noise_lora", 6)):
            cw.write_diffsynth_lora(os.path.join(loras, f"{name}.safetensors"), spec.dit, rank=LORA_RANK, seed=seed)
        args = [loras]
    with open(os.path.join(root, "expected.json"), "w") as f:
        json.dump(expected, f)
    return src, expected, args
