"""The PyTorch reference side of a parity check: diffusers' `WanTransformer3DModel` on random weights.

Needs the `test` extra (torch, diffusers). The official `WanModel` computes the timestep sinusoid in
float64; diffusers computes it in float32 (≈6e-5 rad off at t≈1000). `official_sinusoid` swaps in the
official float64 math, so the reference is the official model's numerics in diffusers' module layout.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cos_jax.wan.config import DiTConfig


def _torch():
    try:
        import diffusers
        import torch
    except ImportError as err:  # pragma: no cover - exercised only without the test extra
        raise ImportError(
            f"the PyTorch reference needs torch and diffusers ({err.name} is missing): "
            "pip install 'cos-jax[test]' (torch==2.13.0 is the CPU build)"
        ) from err
    return torch, diffusers


def diffusers_config(cfg: DiTConfig) -> dict:
    """`WanTransformer3DModel` constructor arguments for a cos-jax config (wan22.md §8)."""
    return dict(
        patch_size=cfg.patch_size,
        num_attention_heads=cfg.num_heads,
        attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_dim,
        out_channels=cfg.out_dim,
        text_dim=cfg.text_dim,
        freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim,
        num_layers=cfg.num_layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=cfg.eps,
        rope_max_seq_len=cfg.rope_max_positions,
    )


def official_sinusoid(dim: int):
    """A torch module computing the official `sinusoidal_embedding_1d` (float64, cos first, then float32)."""
    torch, _ = _torch()

    class OfficialSinusoid(torch.nn.Module):
        def forward(self, t):
            half = dim // 2
            freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half)
            angles = torch.outer(t.to(torch.float64), freqs)
            return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).float()

    return OfficialSinusoid()


def random_reference_dit(cfg: DiTConfig, seed: int = 0, official_time: bool = True):
    """A float32 diffusers DiT with every parameter randomised (norm weights and biases included)."""
    torch, diffusers = _torch()
    torch.manual_seed(seed)
    model = diffusers.WanTransformer3DModel(**diffusers_config(cfg)).float().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    if official_time:
        model.condition_embedder.timesteps_proj = official_sinusoid(cfg.freq_dim)
    return model


def state_dict_numpy(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


@dataclasses.dataclass(frozen=True)
class ParityInputs:
    """Channel-last numpy inputs for one forward: x [B,F,H,W,C], timesteps [B] or [B,L], context, y."""

    x: np.ndarray
    timesteps: np.ndarray
    context: np.ndarray
    y: np.ndarray | None = None


def random_inputs(cfg: DiTConfig, batch: int, latent: tuple[int, int, int], text_tokens: int = 16, seed: int = 0):
    """Random inputs; I2V gets a conditioning y, TI2V per-token timesteps with frame-0 tokens at t=0."""
    rng = np.random.default_rng(seed)
    f, h, w = latent
    y = None
    x_channels = cfg.in_dim
    if cfg.model_type == "i2v":
        x_channels = cfg.out_dim
        y = rng.standard_normal((batch, f, h, w, cfg.in_dim - x_channels), dtype=np.float32)
    x = rng.standard_normal((batch, f, h, w, x_channels), dtype=np.float32)
    t = rng.uniform(0, 1000, size=batch).astype(np.float32)
    t[0] = 999.0
    if cfg.model_type == "ti2v":
        pt, ph, pw = cfg.patch_size
        tokens_per_frame = (h // ph) * (w // pw)
        per_token = np.repeat(t[:, None], (f // pt) * tokens_per_frame, axis=1)
        per_token[:, :tokens_per_frame] = 0.0
        t = per_token
    context = rng.standard_normal((batch, text_tokens, cfg.text_dim), dtype=np.float32)
    return ParityInputs(x, t, context, y)


def reference_forward(model, inputs: ParityInputs) -> np.ndarray:
    """The diffusers model's output, channel-last."""
    torch, _ = _torch()
    x = inputs.x if inputs.y is None else np.concatenate([inputs.x, inputs.y], axis=-1)
    with torch.no_grad():
        out = model(
            hidden_states=torch.from_numpy(np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))),
            timestep=torch.from_numpy(inputs.timesteps),
            encoder_hidden_states=torch.from_numpy(inputs.context),
            return_dict=False,
        )[0]
    return out.numpy().transpose(0, 2, 3, 4, 1)
