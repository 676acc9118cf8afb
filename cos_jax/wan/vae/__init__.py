"""The Wan2.1 (z 16, stride 4×8×8) and Wan2.2 (z 48, stride 4×16×16) causal 3D VAEs (wan22.md §6)."""

from cos_jax.wan.vae.config import PRESETS, VAEConfig, vae_preset
from cos_jax.wan.vae.model import (
    VAE_PRECISIONS,
    WanVAE,
    abstract_vae,
    count_params,
    decode_many,
    init_vae,
    vae_decode,
    vae_encode,
    with_conv_precision,
)

__all__ = [
    "PRESETS",
    "VAE_PRECISIONS",
    "VAEConfig",
    "WanVAE",
    "abstract_vae",
    "count_params",
    "decode_many",
    "init_vae",
    "vae_decode",
    "vae_encode",
    "vae_preset",
    "with_conv_precision",
]
