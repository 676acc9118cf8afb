"""The Wan2.1 / Wan2.2 causal 3D VAEs in Flax NNX, with chunked (`lax.scan`) encode and decode.

Videos are channel-last `[B, T, H, W, 3]` in [-1, 1]; latents are `[B, 1 + (T-1)/4, H/s, W/s, z_dim]`,
normalised per channel ((μ - mean) / std). Chunking follows the official code: the encoder sees frame 0,
then chunks of 4 frames; the decoder sees one latent frame at a time (frame 0 → 1 pixel frame, every
later latent frame → 4). Caches carry the causal state between chunks (see `blocks`).
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from cos_jax.wan.vae.blocks import (
    CausalConv3d,
    MidBlock,
    Resample,
    ResidualBlock,
    RMSNorm,
    avg_down,
    dup_up,
)
from cos_jax.wan.vae.config import BlockPlan, VAEConfig


class DownBlock(nnx.Module):
    """`num_res_blocks` residual blocks and an optional down-sampler; Wan2.2 adds the `AvgDown3D` shortcut."""

    def __init__(self, plan: BlockPlan, cfg: VAEConfig, *, rngs, dtype):
        dims = [plan.in_dim] + [plan.out_dim] * cfg.num_res_blocks
        self.resnets = nnx.List(
            [ResidualBlock(a, b, rngs=rngs, cfg=cfg, dtype=dtype) for a, b in itertools.pairwise(dims)]
        )
        self.downsampler = (
            Resample(plan.out_dim, plan.resample, plan.out_dim, rngs=rngs, cfg=cfg, dtype=dtype)
            if plan.resample
            else None
        )
        self.residual = cfg.is_residual
        self.out_dim = plan.out_dim
        self.factor_t = 2 if plan.temporal else 1
        self.factor_s = 2 if plan.resample else 1

    def __call__(self, x, cache=None, start=False):
        res_caches, down_cache = cache if cache is not None else ((None,) * len(self.resnets), None)
        inp, new = x, []
        for resnet, c in zip(self.resnets, res_caches, strict=True):
            x, c = resnet(x, c)
            new.append(c)
        if self.downsampler is not None:
            x, down_cache = self.downsampler(x, down_cache, start)
        if self.residual:
            x = x + avg_down(inp, self.out_dim, self.factor_t, self.factor_s)
        return x, (tuple(new), down_cache)


class UpBlock(nnx.Module):
    """`num_res_blocks + 1` residual blocks and an optional up-sampler; Wan2.2 adds the `DupUp3D` shortcut."""

    def __init__(self, plan: BlockPlan, cfg: VAEConfig, *, rngs, dtype):
        dims = [plan.in_dim] + [plan.out_dim] * (cfg.num_res_blocks + 1)
        self.resnets = nnx.List(
            [ResidualBlock(a, b, rngs=rngs, cfg=cfg, dtype=dtype) for a, b in itertools.pairwise(dims)]
        )
        self.upsampler = (
            Resample(plan.out_dim, plan.resample, plan.resample_out, rngs=rngs, cfg=cfg, dtype=dtype)
            if plan.resample
            else None
        )
        self.residual = cfg.is_residual and plan.resample is not None
        self.out_dim = plan.out_dim
        self.factor_t = 2 if plan.temporal else 1

    def __call__(self, x, cache=None, start=False):
        res_caches, up_cache = cache if cache is not None else ((None,) * len(self.resnets), None)
        inp, new = x, []
        for resnet, c in zip(self.resnets, res_caches, strict=True):
            x, c = resnet(x, c)
            new.append(c)
        if self.upsampler is not None:
            x, up_cache = self.upsampler(x, up_cache, start)
        if self.residual:
            x = x + dup_up(inp, self.out_dim, self.factor_t, 2, start)
        return x, (tuple(new), up_cache)


class Encoder(nnx.Module):
    def __init__(self, cfg: VAEConfig, *, rngs, dtype):
        plans = cfg.encoder_blocks()
        self.conv_in = CausalConv3d(cfg.io_channels, plans[0].in_dim, rngs=rngs, cfg=cfg, dtype=dtype)
        self.down_blocks = nnx.List([DownBlock(p, cfg, rngs=rngs, dtype=dtype) for p in plans])
        width = plans[-1].out_dim
        self.mid_block = MidBlock(width, rngs=rngs, cfg=cfg, dtype=dtype)
        self.norm_out = RMSNorm(width, dtype=dtype)
        self.conv_out = CausalConv3d(width, 2 * cfg.z_dim, rngs=rngs, cfg=cfg, dtype=dtype)

    def __call__(self, x, cache=None, start=False):
        c_in, c_blocks, c_mid, c_out = (
            cache if cache is not None else (None, (None,) * len(self.down_blocks), None, None)
        )
        x, c_in = self.conv_in(x, c_in)
        new = []
        for block, c in zip(self.down_blocks, c_blocks, strict=True):
            x, c = block(x, c, start)
            new.append(c)
        x, c_mid = self.mid_block(x, c_mid)
        x, c_out = self.conv_out(jax.nn.silu(self.norm_out(x)), c_out)
        return x, (c_in, tuple(new), c_mid, c_out)


class Decoder(nnx.Module):
    def __init__(self, cfg: VAEConfig, *, rngs, dtype):
        plans = cfg.decoder_blocks()
        self.conv_in = CausalConv3d(cfg.z_dim, plans[0].in_dim, rngs=rngs, cfg=cfg, dtype=dtype)
        self.mid_block = MidBlock(plans[0].in_dim, rngs=rngs, cfg=cfg, dtype=dtype)
        self.up_blocks = nnx.List([UpBlock(p, cfg, rngs=rngs, dtype=dtype) for p in plans])
        width = plans[-1].out_dim
        self.norm_out = RMSNorm(width, dtype=dtype)
        self.conv_out = CausalConv3d(width, cfg.io_channels, rngs=rngs, cfg=cfg, dtype=dtype)

    def __call__(self, x, cache=None, start=False):
        c_in, c_mid, c_blocks, c_out = cache if cache is not None else (None, None, (None,) * len(self.up_blocks), None)
        x, c_in = self.conv_in(x, c_in)
        x, c_mid = self.mid_block(x, c_mid)
        new = []
        for block, c in zip(self.up_blocks, c_blocks, strict=True):
            x, c = block(x, c, start)
            new.append(c)
        x, c_out = self.conv_out(jax.nn.silu(self.norm_out(x)), c_out)
        return x, (c_in, c_mid, tuple(new), c_out)


def _scan_chunks(step, first_out, cache, chunks: jax.Array) -> jax.Array:
    """Run `step(chunk, cache) -> (out, cache)` over `chunks` [B, N, k, ...] and append to `first_out`."""
    if chunks.shape[1] == 0:
        return first_out
    time_major = jnp.moveaxis(chunks, 1, 0)

    def body(carry, chunk):
        out, carry = step(chunk, carry)
        return carry, out

    _, outs = jax.lax.scan(body, cache, time_major)  # [N, B, k', ...]
    outs = jnp.moveaxis(outs, 0, 1)
    outs = outs.reshape(outs.shape[0], -1, *outs.shape[3:])
    return jnp.concatenate([first_out, outs], axis=1)


class WanVAE(nnx.Module):
    """Encoder + decoder of a Wan VAE (`cfg.is_residual` selects Wan2.2's shortcuts and patchify)."""

    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.config = cfg
        self.encoder = Encoder(cfg, rngs=rngs, dtype=param_dtype)
        self.quant_conv = CausalConv3d(2 * cfg.z_dim, 2 * cfg.z_dim, (1, 1, 1), rngs=rngs, cfg=cfg, dtype=param_dtype)
        self.post_quant_conv = CausalConv3d(cfg.z_dim, cfg.z_dim, (1, 1, 1), rngs=rngs, cfg=cfg, dtype=param_dtype)
        self.decoder = Decoder(cfg, rngs=rngs, dtype=param_dtype)

    # ---- layout helpers -------------------------------------------------------------------------------
    def _patchify(self, x: jax.Array) -> jax.Array:
        p = self.config.patch_size
        if p == 1:
            return x
        b, t, h, w, c = x.shape
        x = x.reshape(b, t, h // p, p, w // p, p, c).transpose(0, 1, 2, 4, 6, 5, 3)  # channel = c·p² + r·p + q
        return x.reshape(b, t, h // p, w // p, c * p * p)

    def _unpatchify(self, x: jax.Array) -> jax.Array:
        p = self.config.patch_size
        if p == 1:
            return x
        b, t, h, w, cp = x.shape
        x = x.reshape(b, t, h, w, cp // (p * p), p, p).transpose(0, 1, 2, 6, 3, 5, 4)
        return x.reshape(b, t, h * p, w * p, cp // (p * p))

    def _stats(self, dtype):
        cfg = self.config
        return jnp.asarray(cfg.latents_mean, dtype), jnp.asarray(cfg.latents_std, dtype)

    def _check_video(self, video) -> None:
        cfg = self.config
        if video.ndim != 5 or video.shape[-1] != cfg.image_channels:
            raise ValueError(
                f"video must be [B, T, H, W, {cfg.image_channels}] (channel-last), got shape {tuple(video.shape)}"
            )
        _, t, h, w, _ = video.shape
        if (t - 1) % cfg.temporal_stride:
            raise ValueError(
                f"video has {t} frames; the VAE needs {cfg.temporal_stride}n+1 frames (e.g. "
                f"{cfg.pixel_frames(cfg.latent_frames(t))} or {cfg.pixel_frames(cfg.latent_frames(t) + 1)})"
            )
        s = cfg.spatial_stride
        if h % s or w % s:
            raise ValueError(f"video size {h}x{w} is not divisible by the VAE's spatial stride {s}; resize or crop")

    def _check_latents(self, z) -> None:
        if z.ndim != 5 or z.shape[-1] != self.config.z_dim or z.shape[1] < 1:
            raise ValueError(
                f"latents must be [B, F>=1, h, w, {self.config.z_dim}] (channel-last), got shape {tuple(z.shape)}"
            )

    # ---- public API -----------------------------------------------------------------------------------
    def encode(self, video: Float[Array, "b t h w 3"], chunked: bool = True) -> Float[Array, "b f h2 w2 z"]:
        """Normalised latent mean (μ - mean) / std of a video in [-1, 1] (T = 4n+1 frames)."""
        self._check_video(video)
        x = self._patchify(video)
        first, cache = self.encoder(x[:, :1], None, start=True)
        if chunked:
            rest = x[:, 1:]
            chunks = rest.reshape(rest.shape[0], -1, self.config.temporal_stride, *rest.shape[2:])
            out = _scan_chunks(lambda c, k: self.encoder(c, k), first, cache, chunks)
        else:
            out = self.encoder(x, None, start=True)[0]
        mu = self.quant_conv(out)[0][..., : self.config.z_dim]
        mean, std = self._stats(mu.dtype)
        return (mu - mean) / std

    def decode(self, latents: Float[Array, "b f h w z"], chunked: bool = True) -> Float[Array, "b t h2 w2 3"]:
        """Video in [-1, 1] (1 + 4(F-1) frames) from normalised latents; `chunked=False` is the full-sequence form."""
        self._check_latents(latents)
        mean, std = self._stats(latents.dtype)
        x = self.post_quant_conv(latents * std + mean)[0]
        if chunked:
            first, cache = self.decoder(x[:, :1], None, start=True)
            chunks = x[:, 1:, None]  # [B, F-1, 1, h, w, z]
            out = _scan_chunks(lambda c, k: self.decoder(c, k), first, cache, chunks)
        else:
            out = self.decoder(x, None, start=True)[0]
        return jnp.clip(self._unpatchify(out), -1.0, 1.0)


def init_vae(cfg: VAEConfig, seed: int = 0, param_dtype=jnp.float32) -> WanVAE:
    return WanVAE(cfg, rngs=nnx.Rngs(seed), param_dtype=param_dtype)


# --vae-precision names -> lax precision of the VAE's float32 convs and matmuls
VAE_PRECISIONS = {"fp32": "highest", "tf32": "default"}


def lax_precision(name: str) -> str:
    """The lax precision of a VAE precision name ("fp32", "tf32"); ValueError naming the choices otherwise."""
    if name not in VAE_PRECISIONS:
        raise ValueError(f"VAE precision {name!r}; choose one of {sorted(VAE_PRECISIONS)}")
    return VAE_PRECISIONS[name]


def with_conv_precision(model: WanVAE, precision: str) -> WanVAE:
    """The VAE with its convs and matmuls at `precision` ("fp32": float32 arithmetic, the default; "tf32": TF32
    tensor cores on NVIDIA GPUs, PyTorch's default for convolutions, ~6x faster on an H200). In place."""
    lax_prec = lax_precision(precision)
    for _, module in nnx.iter_modules(model):
        if hasattr(module, "precision"):
            module.precision = lax_prec
    model.config = model.config.replace(conv_precision=lax_prec)
    return model


def abstract_vae(cfg: VAEConfig, param_dtype=jnp.float32) -> WanVAE:
    """The VAE with `ShapeDtypeStruct` parameters (no memory), e.g. for parameter counts."""
    return nnx.eval_shape(lambda: init_vae(cfg, param_dtype=param_dtype))


def count_params(model: nnx.Module) -> int:
    return sum(int(v.size) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


@functools.partial(nnx.jit, static_argnames=("chunked",))
def vae_encode(model: WanVAE, video: Float[Array, "b t h w 3"], chunked: bool = True) -> Float[Array, "b f h2 w2 z"]:
    """Jitted `WanVAE.encode` (compiles once per input shape)."""
    return model.encode(video, chunked)


@functools.partial(nnx.jit, static_argnames=("chunked",))
def vae_decode(model: WanVAE, latents: Float[Array, "b f h w z"], chunked: bool = True) -> Float[Array, "b t h2 w2 3"]:
    """Jitted `WanVAE.decode` (compiles once per input shape)."""
    return model.decode(latents, chunked)


def decode_many(model: WanVAE, latents: Float[Array, "n f h w z"], batch_size: int = 1) -> np.ndarray:
    """Decode many latent videos (e.g. x̂₀ at every step × world) in fixed-size batches on the host.

    Every batch has the same shape (the last one is zero-padded), so decoding compiles once; each decoded
    batch is moved to host memory before the next starts. Returns float32 [n, T, H, W, 3].
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    n = latents.shape[0]
    pad = (-n) % batch_size
    if pad:
        latents = jnp.concatenate([latents, jnp.zeros((pad, *latents.shape[1:]), latents.dtype)])
    outs = [
        np.asarray(vae_decode(model, latents[i : i + batch_size]), np.float32) for i in range(0, n + pad, batch_size)
    ]
    return np.concatenate(outs)[:n]
