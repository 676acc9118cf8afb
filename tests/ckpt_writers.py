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


# --- the VAE, umT5 and tokenizer that model folders hold beside the DiT(s) ---


def official_vae_state(vae, cfg) -> dict[str, np.ndarray]:
    """A diffusers `AutoencoderKLWan`'s weights under the official `WanVAE_` names (wan22.md §6.5)."""
    from cos_jax.convert.vae_keys import vae_rules

    state = reference.state_dict_numpy(vae)
    return {rule.official: state[rule.diffusers] for rule in vae_rules(cfg)}


def official_t5_state(t5, num_layers: int) -> dict:
    """A transformers `UMT5EncoderModel`'s weights under the official `models_t5_umt5-xxl-enc-bf16.pth` names."""
    from cos_jax.convert.t5_keys import T5_RULES

    state = t5.state_dict()
    return {r.official.format(i=i): state[r.diffusers.format(i=i)] for r in T5_RULES for i in range(num_layers)}


def write_tokenizer(folder: str) -> None:
    """A tiny word-level `tokenizer.json` (pad 0, </s> 1 appended) plus the side files checkpoints ship."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = ["<pad>", "</s>", "<unk>", "a", "red", "ball", "bounces", "off", "the", "wall", "solve", "maze"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump({"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, f)
    with open(os.path.join(folder, "spiece.model"), "wb") as f:
        f.write(b"not a real sentencepiece model")


def write_official_extras(root: str, vae, vae_cfg, t5, t5_layers: int) -> None:
    """`Wan2.1_VAE.pth` (z 16) or `Wan2.2_VAE.pth` (z 48), `models_t5_umt5-xxl-enc-bf16.pth` (bf16, as
    released) and `google/umt5-xxl/`, as in the official folders (wan22.md §3)."""
    import torch

    name = "Wan2.2_VAE.pth" if vae_cfg.z_dim == 48 else "Wan2.1_VAE.pth"
    torch.save({k: torch.from_numpy(v) for k, v in official_vae_state(vae, vae_cfg).items()}, os.path.join(root, name))
    t5_state = {k: v.to(torch.bfloat16) for k, v in official_t5_state(t5, t5_layers).items()}
    torch.save(t5_state, os.path.join(root, "models_t5_umt5-xxl-enc-bf16.pth"))
    write_tokenizer(os.path.join(root, "google", "umt5-xxl"))


def write_diffusers_extras(root: str, vae, t5) -> None:
    """`vae/`, `text_encoder/` and `tokenizer/` as diffusers pipelines hold them (`save_pretrained`)."""
    vae.save_pretrained(os.path.join(root, "vae"))
    t5.save_pretrained(os.path.join(root, "text_encoder"))
    write_tokenizer(os.path.join(root, "tokenizer"))
