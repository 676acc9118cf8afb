"""Write tiny random Wan DiT checkpoints in every layout users bring (for the conversion tests)."""

from __future__ import annotations

import json
import os

import numpy as np
from safetensors.numpy import save_file

from cos_jax.convert import reference
from cos_jax.convert.dit_config import official_config_json
from cos_jax.convert.dit_keys import SINGLE_FILE_PREFIX, rename
from cos_jax.wan.config import DiTConfig

SHARD_INDEX = "diffusion_pytorch_model.safetensors.index.json"


def official_state(model) -> dict[str, np.ndarray]:
    return rename(reference.state_dict_numpy(model), "diffusers", "official")


def write_official_sharded(folder: str, model, cfg: DiTConfig, shards: int = 3) -> None:
    """`config.json` + `diffusion_pytorch_model-0000k-of-0000n.safetensors` + the index, official names."""
    os.makedirs(folder, exist_ok=True)
    state = official_state(model)
    keys = sorted(state)
    weight_map = {}
    for j in range(shards):
        name = f"diffusion_pytorch_model-{j + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[j::shards]
        save_file({k: state[k] for k in part}, os.path.join(folder, name))
        weight_map.update(dict.fromkeys(part, name))
    total = sum(v.nbytes for v in state.values())
    with open(os.path.join(folder, SHARD_INDEX), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(official_config_json(cfg), f)


def write_official_a14b(root: str, high, low, cfg: DiTConfig) -> None:
    write_official_sharded(os.path.join(root, "high_noise_model"), high, cfg)
    write_official_sharded(os.path.join(root, "low_noise_model"), low, cfg)


def write_diffusers_pipeline(root: str, high, low=None, boundary_ratio: float | None = 0.875) -> None:
    """`model_index.json` + `transformer/` (+ `transformer_2/`) written by diffusers' `save_pretrained`."""
    os.makedirs(root, exist_ok=True)
    high.save_pretrained(os.path.join(root, "transformer"), max_shard_size="200KB")
    index = {"_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"]}
    if low is not None:
        low.save_pretrained(os.path.join(root, "transformer_2"), max_shard_size="200KB")
        index["transformer_2"] = ["diffusers", "WanTransformer3DModel"]
        index["boundary_ratio"] = boundary_ratio
    with open(os.path.join(root, "model_index.json"), "w") as f:
        json.dump(index, f)


def write_single_file(path: str, model, prefix: bool = True, dtype=None) -> dict[str, np.ndarray]:
    """One safetensors file with official names (and the ComfyUI-style prefix); returns what was written."""
    state = official_state(model)
    if dtype is not None:
        state = {k: v.astype(dtype) for k, v in state.items()}
    written = {(SINGLE_FILE_PREFIX if prefix else "") + k: v for k, v in state.items()}
    save_file(written, path)
    return state


LORA_MODULES = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")  # fmt: skip


def write_diffsynth_lora(path: str, cfg: DiTConfig, rank: int = 4, seed: int = 0, alpha: float | None = None):
    """A LoRA as DiffSynth-Studio's trainer saves it: `blocks.N.<module>.lora_{A,B}.default.weight`."""
    rng = np.random.default_rng(seed)
    dims = {"ffn.0": (cfg.ffn_dim, cfg.dim), "ffn.2": (cfg.dim, cfg.ffn_dim)}
    tensors = {}
    for i in range(cfg.num_layers):
        for m in LORA_MODULES:
            out_dim, in_dim = dims.get(m, (cfg.dim, cfg.dim))
            tensors[f"blocks.{i}.{m}.lora_A.default.weight"] = rng.standard_normal((rank, in_dim), np.float32) * 0.1
            tensors[f"blocks.{i}.{m}.lora_B.default.weight"] = rng.standard_normal((out_dim, rank), np.float32) * 0.1
            if alpha is not None:
                tensors[f"blocks.{i}.{m}.alpha"] = np.asarray(alpha, np.float32)
    save_file(tensors, path)
    return tensors
