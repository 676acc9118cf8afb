"""Declarative key table between PyTorch Wan VAE checkpoints and cos-jax `WanVAE` parameters.

One row per tensor: the diffusers `AutoencoderKLWan` name, the official `WanVAE_` name (`Wan2.1_VAE.pth`,
`Wan2.2_VAE.pth`; wan22.md §6.3-6.5), the cos-jax parameter path and a transform. The rows depend on the
config (block counts, which residual blocks have a shortcut, which blocks resample), so `vae_rules(cfg)`
builds them from the same block plans the model is built from. The table converts in both directions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import jax.numpy as jnp
import numpy as np
from flax import nnx

from cos_jax.convert.dit_keys import KeyMismatchError, match_sources
from cos_jax.convert.load import fill_module, flatten_params
from cos_jax.wan.vae.config import VAEConfig
from cos_jax.wan.vae.model import WanVAE, abstract_vae

Layout = Literal["diffusers", "official"]
LAYOUTS = ("diffusers", "official")
Transform = Literal["conv3d", "conv2d", "pointwise", "gamma3d", "gamma2d", "copy"]


@dataclasses.dataclass(frozen=True)
class VAEKeyRule:
    diffusers: str
    official: str
    target: str  # dotted cos-jax path
    transform: Transform

    def source(self, layout: Layout) -> str:
        return self.diffusers if layout == "diffusers" else self.official


def _weight_bias(d: str, o: str, t: str, transform: Transform, kernel="kernel", bias="bias") -> list[VAEKeyRule]:
    return [
        VAEKeyRule(f"{d}.weight", f"{o}.weight", f"{t}.{kernel}", transform),
        VAEKeyRule(f"{d}.bias", f"{o}.bias", f"{t}.{bias}", "copy"),
    ]


def _residual(d: str, o: str, t: str, shortcut: bool) -> list[VAEKeyRule]:
    rules = [
        VAEKeyRule(f"{d}.norm1.gamma", f"{o}.residual.0.gamma", f"{t}.norm1.gamma", "gamma3d"),
        *_weight_bias(f"{d}.conv1", f"{o}.residual.2", f"{t}.conv1", "conv3d"),
        VAEKeyRule(f"{d}.norm2.gamma", f"{o}.residual.3.gamma", f"{t}.norm2.gamma", "gamma3d"),
        *_weight_bias(f"{d}.conv2", f"{o}.residual.6", f"{t}.conv2", "conv3d"),
    ]
    if shortcut:
        rules += _weight_bias(f"{d}.conv_shortcut", f"{o}.shortcut", f"{t}.shortcut", "conv3d")
    return rules


def _resample(d: str, o: str, t: str, mode: str) -> list[VAEKeyRule]:
    rules = _weight_bias(f"{d}.resample.1", f"{o}.resample.1", t, "conv2d", "conv_kernel", "conv_bias")
    if mode.endswith("3d"):
        rules += _weight_bias(f"{d}.time_conv", f"{o}.time_conv", f"{t}.time_conv", "conv3d")
    return rules


def _middle(part: str) -> list[VAEKeyRule]:
    d, o, t = f"{part}.mid_block", f"{part}.middle", f"{part}.mid_block"
    return [
        *_residual(f"{d}.resnets.0", f"{o}.0", f"{t}.resnets.0", False),
        VAEKeyRule(f"{d}.attentions.0.norm.gamma", f"{o}.1.norm.gamma", f"{t}.attention.norm.gamma", "gamma2d"),
        *_weight_bias(
            f"{d}.attentions.0.to_qkv", f"{o}.1.to_qkv", f"{t}.attention", "pointwise", "qkv_kernel", "qkv_bias"
        ),
        *_weight_bias(
            f"{d}.attentions.0.proj", f"{o}.1.proj", f"{t}.attention", "pointwise", "proj_kernel", "proj_bias"
        ),
        *_residual(f"{d}.resnets.1", f"{o}.2", f"{t}.resnets.1", False),
    ]


def _head(part: str) -> list[VAEKeyRule]:
    return [
        VAEKeyRule(f"{part}.norm_out.gamma", f"{part}.head.0.gamma", f"{part}.norm_out.gamma", "gamma3d"),
        *_weight_bias(f"{part}.conv_out", f"{part}.head.2", f"{part}.conv_out", "conv3d"),
    ]


def _encoder_rules(cfg: VAEConfig) -> list[VAEKeyRule]:
    rules = _weight_bias("encoder.conv_in", "encoder.conv1", "encoder.conv_in", "conv3d")
    per_block = cfg.num_res_blocks + 1  # Wan2.1 flattens (resnets..., resample) into one list
    for i, plan in enumerate(cfg.encoder_blocks()):
        t = f"encoder.down_blocks.{i}"
        for j in range(cfg.num_res_blocks):
            if cfg.is_residual:
                d, o = f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.downsamples.{i}.downsamples.{j}"
            else:
                d = o = f"encoder.down_blocks.{i * per_block + j}"
                o = o.replace("down_blocks", "downsamples")
            rules += _residual(d, o, f"{t}.resnets.{j}", shortcut=j == 0 and plan.in_dim != plan.out_dim)
        if plan.resample:
            if cfg.is_residual:
                d = f"encoder.down_blocks.{i}.downsampler"
                o = f"encoder.downsamples.{i}.downsamples.{cfg.num_res_blocks}"
            else:
                d = f"encoder.down_blocks.{i * per_block + cfg.num_res_blocks}"
                o = d.replace("down_blocks", "downsamples")
            rules += _resample(d, o, f"{t}.downsampler", plan.resample)
    return rules + _middle("encoder") + _head("encoder")


def _decoder_rules(cfg: VAEConfig) -> list[VAEKeyRule]:
    rules = _weight_bias("decoder.conv_in", "decoder.conv1", "decoder.conv_in", "conv3d") + _middle("decoder")
    n_res = cfg.num_res_blocks + 1
    per_block = n_res + 1  # Wan2.1 official: (resnets..., resample) flattened into `upsamples`
    for i, plan in enumerate(cfg.decoder_blocks()):
        t = f"decoder.up_blocks.{i}"
        for j in range(n_res):
            d = f"decoder.up_blocks.{i}.resnets.{j}"
            o = f"decoder.upsamples.{i}.upsamples.{j}" if cfg.is_residual else f"decoder.upsamples.{i * per_block + j}"
            rules += _residual(d, o, f"{t}.resnets.{j}", shortcut=j == 0 and plan.in_dim != plan.out_dim)
        if plan.resample:
            if cfg.is_residual:
                d, o = f"decoder.up_blocks.{i}.upsampler", f"decoder.upsamples.{i}.upsamples.{n_res}"
            else:
                d, o = f"decoder.up_blocks.{i}.upsamplers.0", f"decoder.upsamples.{i * per_block + n_res}"
            rules += _resample(d, o, f"{t}.upsampler", plan.resample)
    return rules + _head("decoder")


def vae_rules(cfg: VAEConfig) -> tuple[VAEKeyRule, ...]:
    """Every tensor of a VAE with this config, in both layouts."""
    return (
        *_encoder_rules(cfg),
        *_weight_bias("quant_conv", "conv1", "quant_conv", "conv3d"),
        *_weight_bias("post_quant_conv", "conv2", "post_quant_conv", "conv3d"),
        *_decoder_rules(cfg),
    )


def detect_layout(keys) -> Layout:
    names = set(keys)
    if "quant_conv.weight" in names:
        return "diffusers"
    if "conv1.weight" in names:
        return "official"
    raise KeyMismatchError(
        "cannot tell the VAE checkpoint layout: neither 'quant_conv.weight' (diffusers) nor 'conv1.weight' "
        "(official) is present; pass layout= explicitly"
    )


def _forward(transform: Transform, x: np.ndarray) -> np.ndarray:
    if transform == "conv3d":
        return x.transpose(2, 3, 4, 1, 0)  # (O, I, t, h, w) -> (t, h, w, I, O)
    if transform == "conv2d":
        return x.transpose(2, 3, 1, 0)  # (O, I, h, w) -> (h, w, I, O)
    if transform == "pointwise":
        return x.reshape(x.shape[0], x.shape[1]).T  # (O, I, 1, 1) -> (I, O)
    if transform in ("gamma3d", "gamma2d"):
        return x.reshape(-1)
    return x


def _backward(transform: Transform, x: np.ndarray) -> np.ndarray:
    if transform == "conv3d":
        return x.transpose(4, 3, 0, 1, 2)
    if transform == "conv2d":
        return x.transpose(3, 2, 0, 1)
    if transform == "pointwise":
        return x.T[:, :, None, None]
    if transform == "gamma3d":
        return x.reshape(-1, 1, 1, 1)
    if transform == "gamma2d":
        return x.reshape(-1, 1, 1)
    return x


def expected_keys(cfg: VAEConfig, layout: Layout) -> list[str]:
    return [rule.source(layout) for rule in vae_rules(cfg)]


def plan_vae_sources(names, cfg: VAEConfig, layout: Layout) -> list[tuple[VAEKeyRule, list[str]]]:
    """Each rule with its one source name, requiring every name to be used exactly once (`match_sources`)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    hint = (
        f"; is the config (base_dim={cfg.base_dim}, z_dim={cfg.z_dim}, is_residual={cfg.is_residual}, "
        f"dim_mult={cfg.dim_mult}, num_res_blocks={cfg.num_res_blocks}) the checkpoint's?"
    )
    return match_sources(names, vae_rules(cfg), 0, layout, what="VAE ", hint=hint)


def forward_transform(rule: VAEKeyRule, x: np.ndarray) -> np.ndarray:
    """One source tensor in the cos-jax orientation."""
    return _forward(rule.transform, x)


def backward_transform(rule: VAEKeyRule, x: np.ndarray) -> np.ndarray:
    """One cos-jax parameter in the PyTorch orientation."""
    return _backward(rule.transform, x)


def to_cos_params(state_dict: Mapping[str, np.ndarray], cfg: VAEConfig, layout: Layout | None = None) -> dict:
    """A flat {dotted cos-jax path: array} dict from a PyTorch-named VAE state dict (strict: every tensor once)."""
    layout = layout or detect_layout(state_dict)
    plan = plan_vae_sources(state_dict, cfg, layout)
    return {rule.target: _forward(rule.transform, np.asarray(state_dict[name])) for rule, (name,) in plan}


def from_cos_params(flat: Mapping[str, np.ndarray], cfg: VAEConfig, layout: Layout) -> dict[str, np.ndarray]:
    """The inverse of `to_cos_params`: PyTorch-named, C-contiguous numpy arrays in the chosen layout.

    (Contiguous because `safetensors.numpy.save_file` writes the raw buffer of a transposed view.)
    """
    return {
        rule.source(layout): np.ascontiguousarray(_backward(rule.transform, np.asarray(flat[rule.target])))
        for rule in vae_rules(cfg)
    }


def vae_from_state_dict(
    state_dict: Mapping[str, np.ndarray], cfg: VAEConfig, layout: Layout | None = None, param_dtype=jnp.float32
) -> WanVAE:
    """A `WanVAE` holding the given weights (diffusers or official names; layout auto-detected).

    Raises `KeyMismatchError` naming missing/unexpected tensors or tensors whose shape differs from the model's.
    """
    flat = to_cos_params(state_dict, cfg, layout)
    return fill_module(abstract_vae(cfg, param_dtype), flat, param_dtype, "VAE")


def vae_to_state_dict(model: WanVAE, layout: Layout) -> dict[str, np.ndarray]:
    """The model's weights as PyTorch-named float32 numpy arrays."""
    flat = flatten_params(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    return from_cos_params({k: np.asarray(v, np.float32) for k, v in flat.items()}, model.config, layout)


def read_vae_file(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a VAE checkpoint as float32 numpy: a diffusers `vae/` folder or `.safetensors`, or the
    official `.pth` (read by `cos_jax.convert.sources`: `torch.load(mmap=True, weights_only=True)`)."""
    from cos_jax.convert.sources import open_tensors

    if not Path(path).exists():
        raise FileNotFoundError(f"VAE checkpoint {path} does not exist")
    source = open_tensors(path)
    out = {}
    for name in source.infos:
        x = source.read(name)
        out[name] = x.astype(np.float32) if x.dtype.kind == "f" or x.dtype.name == "bfloat16" else x
    return out


def load_vae(path: str | Path, cfg: VAEConfig, layout: Layout | None = None, param_dtype=jnp.float32) -> WanVAE:
    """A `WanVAE` from a checkpoint file or diffusers `vae/` folder (layout auto-detected, strict)."""
    return vae_from_state_dict(read_vae_file(path), cfg, layout, param_dtype)


DIFFUSERS_CLASS = "AutoencoderKLWan"


def vae_config_from_json(config: Mapping) -> VAEConfig:
    """The config of a diffusers `vae/config.json` (`AutoencoderKLWan`)."""
    cls = config.get("_class_name")
    if cls not in (None, DIFFUSERS_CLASS):
        raise ValueError(f"vae/config.json describes a {cls}, not a Wan VAE ({DIFFUSERS_CLASS})")
    if config.get("attn_scales"):
        raise ValueError(
            f"attn_scales={config['attn_scales']}: Wan VAEs with attention in the down blocks are not supported"
        )
    patch = config.get("patch_size") or 1
    z_dim = config.get("z_dim", 16)
    preset = _preset_for(z_dim)
    base = config.get("base_dim", 96)
    return VAEConfig(
        base_dim=base,
        decoder_base_dim=config.get("decoder_base_dim") or base,
        z_dim=z_dim,
        is_residual=bool(config.get("is_residual", False)),
        patch_size=patch,
        latents_mean=tuple(config.get("latents_mean") or preset.latents_mean),
        latents_std=tuple(config.get("latents_std") or preset.latents_std),
        dim_mult=tuple(config.get("dim_mult", preset.dim_mult)),
        num_res_blocks=config.get("num_res_blocks", preset.num_res_blocks),
        temporal_downsample=tuple(config.get("temperal_downsample", preset.temporal_downsample)),
        image_channels=config.get("in_channels", 3 * patch**2) // patch**2,
    )


def vae_config_from_shapes(shapes: Mapping[str, tuple[int, ...]], layout: Layout) -> VAEConfig:
    """The config of a checkpoint without a config.json (the official `.pth`): widths, z_dim, patch size and
    the Wan2.2 residual shortcuts from the tensors; block counts and latent statistics from the released VAE
    with that z_dim (the strict key and shape check then confirms the guess)."""
    names = {
        "diffusers": ("post_quant_conv", "conv_in", "conv_out", "encoder.down_blocks.0.resnets.0.conv1.weight"),
        "official": ("conv2", "conv1", "head.2", "encoder.downsamples.0.downsamples.0.residual.2.weight"),
    }
    post, conv_in, conv_out, residual_key = names[layout]
    try:
        z_dim = shapes[f"{post}.weight"][0]
        base, io = shapes[f"encoder.{conv_in}.weight"][:2]
        decoder_base = shapes[f"decoder.{conv_out}.weight"][1]
    except KeyError as err:
        raise KeyError(f"VAE {layout} layout: tensor {err} is missing; cannot read the config") from None
    patch = round((io / 3) ** 0.5)
    if 3 * patch**2 != io:
        raise ValueError(f"VAE encoder input has {io} channels; expected 3 x patch^2")
    return _preset_for(z_dim).replace(
        base_dim=base, decoder_base_dim=decoder_base, z_dim=z_dim, patch_size=patch, is_residual=residual_key in shapes
    )


def _preset_for(z_dim: int) -> VAEConfig:
    from cos_jax.wan.vae.config import PRESETS

    for cfg in PRESETS.values():
        if cfg.z_dim == z_dim:
            return cfg
    raise ValueError(
        f"no released Wan VAE has z_dim={z_dim} (Wan2.1: 16, Wan2.2: 48); give a diffusers vae/ folder with its "
        "config.json"
    )
