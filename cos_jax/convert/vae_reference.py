"""The PyTorch reference side of VAE parity: diffusers' `AutoencoderKLWan` on random weights.

Needs the `test` extra (torch, diffusers). diffusers' `encode`/`decode` do not normalise latents (its
pipelines do); `reference_encode`/`reference_decode` add the official per-channel normalisation so they
compute what `WanVAE.encode`/`decode` compute, in channel-first PyTorch layout.
"""

from __future__ import annotations

import numpy as np

from cos_jax.convert.reference import _torch
from cos_jax.wan.vae.config import VAEConfig


def diffusers_vae_config(cfg: VAEConfig) -> dict:
    """`AutoencoderKLWan` constructor arguments for a cos-jax VAE config (wan22.md §6.5)."""
    return dict(
        base_dim=cfg.base_dim,
        decoder_base_dim=cfg.decoder_base_dim,
        z_dim=cfg.z_dim,
        dim_mult=list(cfg.dim_mult),
        num_res_blocks=cfg.num_res_blocks,
        attn_scales=[],
        temperal_downsample=list(cfg.temporal_downsample),
        latents_mean=list(cfg.latents_mean),
        latents_std=list(cfg.latents_std),
        is_residual=cfg.is_residual,
        in_channels=cfg.io_channels,
        out_channels=cfg.io_channels,
        patch_size=cfg.patch_size if cfg.patch_size > 1 else None,
        scale_factor_temporal=cfg.temporal_stride,
        scale_factor_spatial=cfg.spatial_stride,
    )


def random_reference_vae(cfg: VAEConfig, seed: int = 0, scale: float = 0.1):
    """A float32 diffusers VAE with every parameter perturbed (norm gammas and biases included)."""
    torch, diffusers = _torch()
    torch.manual_seed(seed)
    model = diffusers.AutoencoderKLWan(**diffusers_vae_config(cfg)).float().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def _stats(cfg: VAEConfig, like):
    torch, _ = _torch()
    shape = (1, cfg.z_dim, 1, 1, 1)
    return (
        torch.tensor(cfg.latents_mean, dtype=like.dtype).view(shape),
        torch.tensor(cfg.latents_std, dtype=like.dtype).view(shape),
    )


def reference_encode(model, cfg: VAEConfig, video: np.ndarray) -> np.ndarray:
    """Normalised latent mean, [B, z, F, h, w], of a [B, 3, T, H, W] video."""
    torch, _ = _torch()
    video = torch.from_numpy(video)
    mean, std = _stats(cfg, video)
    with torch.no_grad():
        mu = model.encode(video).latent_dist.mode()
        return ((mu - mean) / std).numpy()


def exact_upsampling(monkeypatch) -> None:
    """Drop diffusers' float32 cast around nearest upsampling (a no-op in float32), for float64 comparisons."""
    torch, _ = _torch()
    from diffusers.models.autoencoders import autoencoder_kl_wan

    monkeypatch.setattr(autoencoder_kl_wan.WanUpsample, "forward", lambda self, x: torch.nn.Upsample.forward(self, x))


def reference_decode(model, cfg: VAEConfig, latents: np.ndarray) -> np.ndarray:
    """Video [B, 3, T, H, W] in [-1, 1] from normalised latents [B, z, F, h, w]."""
    torch, _ = _torch()
    latents = torch.from_numpy(latents)
    mean, std = _stats(cfg, latents)
    with torch.no_grad():
        return model.decode(latents * std + mean).sample.numpy()
