"""Building blocks of the Wan causal 3D VAEs (wan22.md §6.1), channel-last ([B, T, H, W, C]).

Every temporal layer is *streaming*: `layer(x, cache, start) -> (y, cache)`. `cache` holds what the layer
needs from earlier frames (the last 2 input frames of a causal 3×3×3 conv, the last frame of a temporal
down-sampler); `None` means "nothing seen yet" (zeros). `start=True` marks a chunk that begins at frame 0
of the video, where the resamplers treat frame 0 specially (it is never duplicated or strided away).
One call on the whole video with `start=True` is the full-sequence computation; a first call on frame 0
followed by calls on later chunks with the returned caches is the official chunked computation, and the
two agree exactly in real arithmetic. VAE parameters carry no logical axes (replicated everywhere).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from cos_jax.wan.layers import param

NORM_EPS = 1e-12  # F.normalize's floor on the L2 norm


def _replicated(rngs, shape, init, dtype) -> nnx.Param:
    return param(rngs, shape, (None,) * len(shape), init, dtype)


def _conv(x: jax.Array, kernel: jax.Array, strides, padding, precision: str) -> jax.Array:
    spatial = kernel.ndim - 2
    dims = ("NDHWC", "DHWIO", "NDHWC") if spatial == 3 else ("NHWC", "HWIO", "NHWC")
    return lax.conv_general_dilated(
        x, kernel.astype(x.dtype), strides, padding, dimension_numbers=dims, precision=precision
    )


def per_frame(fn, x: jax.Array) -> jax.Array:
    """Apply a 2D (NHWC) function to every frame of a [B, T, H, W, C] video."""
    b, t = x.shape[:2]
    y = fn(x.reshape(b * t, *x.shape[2:]))
    return y.reshape(b, t, *y.shape[1:])


class CausalConv3d(nnx.Module):
    """Conv3d with a causal time pad (`time_pad` frames in front, none behind) and symmetric spatial pad.

    With `time_pad > 0` the front pad comes from the cache (zeros at the start of the video) and the
    returned cache holds the last `time_pad` frames of (cache ++ x); otherwise the cache is always None.
    """

    def __init__(self, d_in, d_out, kernel=(3, 3, 3), *, stride=(1, 1, 1), time_pad=None, rngs, cfg, dtype):
        kt, kh, kw = kernel
        self.kernel = _replicated(rngs, (kt, kh, kw, d_in, d_out), "fan_in", dtype)
        self.bias = _replicated(rngs, (d_out,), "zeros", dtype)
        self.stride = tuple(stride)
        self.time_pad = kt - 1 if time_pad is None else time_pad
        self.spatial_pad = ((kh - 1) // 2, (kw - 1) // 2)
        self.precision = cfg.conv_precision

    def apply_valid(self, x: jax.Array) -> jax.Array:
        """The conv with no time padding (spatial padding only)."""
        ph, pw = self.spatial_pad
        y = _conv(x, self.kernel[...], self.stride, ((0, 0), (ph, ph), (pw, pw)), self.precision)
        return y + self.bias[...].astype(y.dtype)

    def __call__(self, x: jax.Array, cache: jax.Array | None = None) -> tuple[jax.Array, jax.Array | None]:
        if self.time_pad == 0:
            return self.apply_valid(x), None
        if cache is None:
            cache = jnp.zeros((x.shape[0], self.time_pad, *x.shape[2:]), x.dtype)
        x = jnp.concatenate([cache, x], axis=1)
        return self.apply_valid(x), x[:, -self.time_pad :]


class RMSNorm(nnx.Module):
    """`F.normalize` over channels times sqrt(C) times gamma (the Wan VAE `RMS_norm`, no bias)."""

    def __init__(self, dim: int, *, dtype):
        self.gamma = _replicated(None, (dim,), "ones", dtype)
        self.scale = math.sqrt(dim)

    def __call__(self, x: jax.Array) -> jax.Array:
        # Half-precision inputs are normalised in float32 (as diffusers does), then cast back.
        xf = x.astype(jnp.float32) if jnp.finfo(x.dtype).bits < 32 else x
        norm = jnp.sqrt(jnp.sum(jnp.square(xf), axis=-1, keepdims=True))
        normed = (xf / jnp.maximum(norm, NORM_EPS)).astype(x.dtype)
        return normed * self.scale * self.gamma[...].astype(x.dtype)


class ResidualBlock(nnx.Module):
    """norm → SiLU → causal conv → norm → SiLU → causal conv, plus a 1×1×1 conv shortcut if widths differ."""

    def __init__(self, d_in: int, d_out: int, *, rngs, cfg, dtype):
        self.norm1 = RMSNorm(d_in, dtype=dtype)
        self.conv1 = CausalConv3d(d_in, d_out, rngs=rngs, cfg=cfg, dtype=dtype)
        self.norm2 = RMSNorm(d_out, dtype=dtype)
        self.conv2 = CausalConv3d(d_out, d_out, rngs=rngs, cfg=cfg, dtype=dtype)
        self.shortcut = CausalConv3d(d_in, d_out, (1, 1, 1), rngs=rngs, cfg=cfg, dtype=dtype) if d_in != d_out else None

    def __call__(self, x, cache=None, start=False):
        c1, c2 = cache if cache is not None else (None, None)
        h = x if self.shortcut is None else self.shortcut(x)[0]
        x, c1 = self.conv1(jax.nn.silu(self.norm1(x)), c1)
        x, c2 = self.conv2(jax.nn.silu(self.norm2(x)), c2)
        return x + h, (c1, c2)


class AttentionBlock(nnx.Module):
    """Single-head self-attention over the pixels of each frame (scale 1/sqrt(C)), with a residual add."""

    def __init__(self, dim: int, *, rngs, cfg, dtype):
        self.norm = RMSNorm(dim, dtype=dtype)
        self.qkv_kernel = _replicated(rngs, (dim, 3 * dim), "fan_in", dtype)
        self.qkv_bias = _replicated(rngs, (3 * dim,), "zeros", dtype)
        self.proj_kernel = _replicated(rngs, (dim, dim), "fan_in", dtype)
        self.proj_bias = _replicated(rngs, (dim,), "zeros", dtype)
        self.precision = cfg.conv_precision

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, h, w, c = x.shape
        dt, prec = x.dtype, self.precision
        tokens = self.norm(x).reshape(b * t, h * w, c)
        qkv = jnp.einsum("bnc,cd->bnd", tokens, self.qkv_kernel[...].astype(dt), precision=prec)
        q, k, v = jnp.split(qkv + self.qkv_bias[...].astype(dt), 3, axis=-1)
        logits = jnp.einsum("bqc,bkc->bqk", q, k, precision=prec) / jnp.sqrt(jnp.asarray(c, dt))
        out = jnp.einsum("bqk,bkc->bqc", jax.nn.softmax(logits, axis=-1), v, precision=prec)
        out = jnp.einsum("bnc,cd->bnd", out, self.proj_kernel[...].astype(dt), precision=prec)
        out = out + self.proj_bias[...].astype(dt)
        return x + out.reshape(b, t, h, w, c)


class Resample(nnx.Module):
    """Spatial ×2 down/up-sampling per frame, optionally with a temporal ×2 causal conv (wan22.md §6.1).

    downsample3d: frame 0 passes, later frames are a stride-2 conv over (previous frame, x...).
    upsample3d: frame 0 passes, every later frame becomes two (a causal conv to 2C channels whose halves
    are interleaved in time) - the temporal conv sees the frames after frame 0 only, zero-padded.
    """

    def __init__(self, dim: int, mode: str, d_out: int, *, rngs, cfg, dtype):
        if mode not in ("downsample2d", "downsample3d", "upsample2d", "upsample3d"):
            raise ValueError(f"unknown resample mode {mode!r}")
        self.mode = mode
        width_out = dim if mode.startswith("down") else d_out
        self.conv_kernel = _replicated(rngs, (3, 3, dim, width_out), "fan_in", dtype)
        self.conv_bias = _replicated(rngs, (width_out,), "zeros", dtype)
        self.precision = cfg.conv_precision
        if mode == "downsample3d":
            self.time_conv = CausalConv3d(
                dim, dim, (3, 1, 1), stride=(2, 1, 1), time_pad=0, rngs=rngs, cfg=cfg, dtype=dtype
            )
        elif mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, 2 * dim, (3, 1, 1), rngs=rngs, cfg=cfg, dtype=dtype)
        else:
            self.time_conv = None

    def _spatial(self, frames: jax.Array) -> jax.Array:
        kernel = self.conv_kernel[...]
        if self.mode.startswith("down"):
            y = _conv(frames, kernel, (2, 2), ((0, 1), (0, 1)), self.precision)
        else:
            up = jnp.repeat(jnp.repeat(frames, 2, axis=1), 2, axis=2)  # nearest-exact ×2
            y = _conv(up, kernel, (1, 1), ((1, 1), (1, 1)), self.precision)
        return y + self.conv_bias[...].astype(y.dtype)

    def _time_up(self, x, cache, start):
        """upsample3d's temporal part: [B, T, ...] -> [B, 2T(-1 at the start), ...]."""
        first, rest = (x[:, :1], x[:, 1:]) if start else (None, x)
        if rest.shape[1] == 0:  # the first chunk is frame 0 alone: nothing to convolve yet
            cache = jnp.zeros((x.shape[0], self.time_conv.time_pad, *x.shape[2:]), x.dtype)
            return first, cache
        y, cache = self.time_conv(rest, None if start else cache)
        b, t, h, w, c2 = y.shape
        y = y.reshape(b, t, h, w, 2, c2 // 2).transpose(0, 1, 4, 2, 3, 5).reshape(b, 2 * t, h, w, c2 // 2)
        return (y if first is None else jnp.concatenate([first, y], axis=1)), cache

    def _time_down(self, x, cache, start):
        """downsample3d's temporal part: stride-2 valid conv over (last frame of the previous chunk, x...)."""
        new_cache = x[:, -1:]
        if start:
            strided = self.time_conv.apply_valid(x) if x.shape[1] >= 3 else x[:, :0]
            return jnp.concatenate([x[:, :1], strided], axis=1), new_cache
        return self.time_conv.apply_valid(jnp.concatenate([cache, x], axis=1)), new_cache

    def __call__(self, x, cache=None, start=False):
        if self.mode == "upsample3d":
            x, cache = self._time_up(x, cache, start)
        x = per_frame(self._spatial, x)
        if self.mode == "downsample3d":
            x, cache = self._time_down(x, cache, start)
        return x, cache


def avg_down(x: jax.Array, d_out: int, factor_t: int, factor_s: int) -> jax.Array:
    """Wan2.2 `AvgDown3D`: fold (t, h, w) blocks into channels, then average groups of channels.

    Time is front-padded with zeros to a multiple of `factor_t` (per call, as in the official chunking).
    """
    b, t, h, w, c = x.shape
    pad_t = (-t) % factor_t
    if pad_t:
        x = jnp.pad(x, ((0, 0), (pad_t, 0), (0, 0), (0, 0), (0, 0)))
        t += pad_t
    ft, fs = factor_t, factor_s
    x = x.reshape(b, t // ft, ft, h // fs, fs, w // fs, fs, c)
    x = x.transpose(0, 1, 3, 5, 7, 2, 4, 6)  # channel index = c·(ft·fs·fs) + it·fs·fs + ih·fs + iw
    x = x.reshape(b, t // ft, h // fs, w // fs, d_out, c * ft * fs * fs // d_out)
    return x.mean(axis=-1)


def dup_up(x: jax.Array, d_out: int, factor_t: int, factor_s: int, start: bool) -> jax.Array:
    """Wan2.2 `DupUp3D`: repeat channels, then unfold them into (t, h, w) blocks (inverse of `avg_down`).

    At the start of the video the first `factor_t - 1` frames are dropped (frame 0 is not duplicated).
    """
    b, t, h, w, c = x.shape
    ft, fs = factor_t, factor_s
    x = jnp.repeat(x, d_out * ft * fs * fs // c, axis=-1)
    x = x.reshape(b, t, h, w, d_out, ft, fs, fs).transpose(0, 1, 5, 2, 6, 3, 7, 4)
    x = x.reshape(b, t * ft, h * fs, w * fs, d_out)
    return x[:, ft - 1 :] if start else x


class MidBlock(nnx.Module):
    """Residual block, per-frame attention, residual block."""

    def __init__(self, dim: int, *, rngs, cfg, dtype):
        self.resnets = nnx.List([ResidualBlock(dim, dim, rngs=rngs, cfg=cfg, dtype=dtype) for _ in range(2)])
        self.attention = AttentionBlock(dim, rngs=rngs, cfg=cfg, dtype=dtype)

    def __call__(self, x, cache=None, start=False):
        c0, c1 = cache if cache is not None else (None, None)
        x, c0 = self.resnets[0](x, c0)
        x, c1 = self.resnets[1](self.attention(x), c1)
        return x, (c0, c1)
