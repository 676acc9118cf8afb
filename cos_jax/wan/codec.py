"""A lossless pixel-space codec with the Wan VAEs' interface and strides (the toy world's "VAE").

Video [B, T, H, W, 3] in [-1, 1] with T = 4n+1 maps to a latent [B, n+1, H/s, W/s, 4·s²·3]: like the
causal Wan VAEs, latent frame 0 holds pixel frame 0 alone (repeated 4 times), every later latent frame
holds 4 pixel frames; space-to-depth by s folds s×s pixel blocks into channels. With s = 2 the latent
has Wan2.2's 48 channels. It is exactly invertible, needs no training, and keeps every pixel a scorer
reads — the reason the toy world uses it instead of a learned VAE.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

TEMPORAL_STRIDE = 4


@dataclasses.dataclass(frozen=True)
class PixelCodec:
    spatial_stride: int = 2

    @property
    def latent_channels(self) -> int:
        return TEMPORAL_STRIDE * self.spatial_stride**2 * 3

    @property
    def stride(self) -> tuple[int, int, int]:
        return TEMPORAL_STRIDE, self.spatial_stride, self.spatial_stride

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        self._check(frames, height, width)
        s = self.spatial_stride
        return (frames - 1) // TEMPORAL_STRIDE + 1, height // s, width // s, self.latent_channels

    def _check(self, frames: int, height: int, width: int) -> None:
        if frames < 1 or (frames - 1) % TEMPORAL_STRIDE:
            raise ValueError(f"{frames} frames: the codec needs 4n+1 frames (1, 5, 9, 17, 33, …)")
        if height % self.spatial_stride or width % self.spatial_stride:
            raise ValueError(f"size {height}x{width} is not divisible by the spatial stride {self.spatial_stride}")

    def encode(self, video: Float[Array, "B T H W 3"]) -> Float[Array, "B F h w C"]:
        b, t, h, w, c = video.shape
        self._check(t, h, w)
        s = self.spatial_stride
        frames = jnp.concatenate([jnp.repeat(video[:, :1], TEMPORAL_STRIDE - 1, axis=1), video], axis=1)
        groups = frames.reshape(b, -1, TEMPORAL_STRIDE, h // s, s, w // s, s, c)
        return groups.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, -1, h // s, w // s, self.latent_channels)

    def decode(self, latent: Float[Array, "B F h w C"]) -> Float[Array, "B T H W 3"]:
        """Pixels in [-1, 1]; frame 0 is the mean of latent frame 0's four copies."""
        b, f, h, w, _ = latent.shape
        s = self.spatial_stride
        groups = latent.reshape(b, f, h, w, TEMPORAL_STRIDE, s, s, 3).transpose(0, 1, 4, 2, 5, 3, 6, 7)
        groups = groups.reshape(b, f, TEMPORAL_STRIDE, h * s, w * s, 3)
        first = jnp.mean(groups[:, :1], axis=2)
        rest = groups[:, 1:].reshape(b, -1, h * s, w * s, 3)
        return jnp.clip(jnp.concatenate([first, rest], axis=1), -1.0, 1.0)

    def i2v_condition(self, first_frame: Float[Array, "B H W 3"], frames: int) -> Float[Array, "B F h w C4"]:
        """I2V-A14B's y = [mask (4 channels) | latent of (first frame, then zeros)]: 4 + C channels."""
        b, h, w, _ = first_frame.shape
        video = jnp.concatenate([first_frame[:, None], jnp.zeros((b, frames - 1, h, w, 3), first_frame.dtype)], 1)
        latent = self.encode(video)
        mask = jnp.zeros((*latent.shape[:-1], TEMPORAL_STRIDE), latent.dtype).at[:, 0].set(1.0)
        return jnp.concatenate([mask, latent], axis=-1)


def to_unit_range(video_uint8: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return video_uint8.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(video: jax.Array) -> jax.Array:
    return jnp.clip(jnp.round((video + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
