"""The toy world's model: the Wan DiT (`toy` preset) + a byte-level tiny umT5, over the pixel codec.

Everything is the real Wan2.2 architecture at a small size; only the tokenizer (bytes) and the codec
(lossless space-to-depth) replace pieces that would need downloads or training of their own.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from flax import nnx

from cos_jax.wan.codec import PixelCodec
from cos_jax.wan.config import DiTConfig, preset
from cos_jax.wan.dit import WanDiT
from cos_jax.wan.t5 import UMT5_TOY, T5Config, UMT5Encoder
from cos_jax.wan.text import ByteTokenizer


@dataclasses.dataclass(frozen=True)
class ToySpec:
    dit: DiTConfig = dataclasses.field(default_factory=lambda: preset("toy"))
    text: T5Config = UMT5_TOY
    resolution: int = 32
    frames: int = 17
    spatial_stride: int = 2

    @property
    def codec(self) -> PixelCodec:
        return PixelCodec(self.spatial_stride)

    @property
    def tokenizer(self) -> ByteTokenizer:
        return ByteTokenizer(self.dit.text_len)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        return self.codec.latent_shape(self.frames, self.resolution, self.resolution)


class ToyModel(nnx.Module):
    """The trainable pair: `dit` (velocity) and `text` (prompt encoder)."""

    def __init__(self, spec: ToySpec, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        if spec.text.dim != spec.dit.text_dim:
            raise ValueError(f"text encoder width {spec.text.dim} != DiT text_dim {spec.dit.text_dim}")
        self.dit = WanDiT(spec.dit, rngs=rngs, param_dtype=param_dtype)
        self.text = UMT5Encoder(spec.text, rngs=rngs, param_dtype=param_dtype)


def init_toy(spec: ToySpec | None = None, seed: int = 0) -> ToyModel:
    return ToyModel(spec or ToySpec(), rngs=nnx.Rngs(seed))
