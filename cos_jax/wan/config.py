"""Frozen configs of the Wan2.2 DiT and the released presets (values: wan22.md §2.1)."""

from __future__ import annotations

import dataclasses
from typing import Literal

ModelType = Literal["t2v", "i2v", "ti2v"]


@dataclasses.dataclass(frozen=True)
class DiTConfig:
    """Static structure of one Wan2.2 `WanModel` (one expert of an A14B model)."""

    model_type: ModelType
    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    in_dim: int
    out_dim: int
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_max_positions: int = 1024

    def __post_init__(self):
        if self.dim % self.num_heads:
            raise ValueError(f"dim={self.dim} is not divisible by num_heads={self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for the interleaved RoPE")
        if self.model_type not in ("t2v", "i2v", "ti2v"):
            raise ValueError(f"model_type={self.model_type!r}; expected 't2v', 'i2v' or 'ti2v'")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def rope_pairs(self) -> tuple[int, int, int]:
        """Rotation pairs per axis (frame, row, column): the official split, 22/21/21 at head_dim 128."""
        pairs = self.head_dim // 2
        return pairs - 2 * (pairs // 3), pairs // 3, pairs // 3

    @property
    def patch_features(self) -> int:
        """Output features of the head: prod(patch) * out_dim."""
        pt, ph, pw = self.patch_size
        return pt * ph * pw * self.out_dim

    def tokens(self, latent_frames: int, latent_height: int, latent_width: int) -> int:
        """DiT tokens of one latent video: its (frame, row, column) grid divided by the patch."""
        pt, ph, pw = self.patch_size
        return (latent_frames // pt) * (latent_height // ph) * (latent_width // pw)

    def forward_flops(self, tokens: int, text_tokens: int | None = None) -> float:
        """FLOPs of one forward of one world (2 per multiply-add): blocks, time/text embeddings, head (wan22.md §9)."""
        d, f, lt = self.dim, self.ffn_dim, self.text_len if text_tokens is None else text_tokens
        per_layer = 12 * tokens * d * d + 4 * tokens * d * f + 4 * tokens * tokens * d + 4 * tokens * lt * d
        per_layer += 4 * lt * d * d
        embed = 2 * tokens * self.in_dim * 4 * d + 2 * lt * (self.text_dim * d + d * d)
        return float(self.num_layers * per_layer + embed + 2 * tokens * d * self.patch_features)

    def replace(self, **changes) -> DiTConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, DiTConfig] = {
    "t2v_a14b": DiTConfig("t2v", dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, in_dim=16, out_dim=16),
    "i2v_a14b": DiTConfig("i2v", dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, in_dim=36, out_dim=16),
    "ti2v_5b": DiTConfig("ti2v", dim=3072, ffn_dim=14336, num_heads=24, num_layers=30, in_dim=48, out_dim=48),
    # The toy world: I2V-shaped over the 48-channel pixel codec ([latent 48 | mask 4 | first-frame latent 48]),
    # a byte-level tiny umT5 (width 128, 384 tokens); head_dim 64 gives a 12/10/10 RoPE split.
    "toy": DiTConfig(
        "i2v", dim=256, ffn_dim=1024, num_heads=4, num_layers=8, in_dim=100, out_dim=48, text_dim=128, text_len=384
    ),
}


def preset(name: str) -> DiTConfig:
    """Return a named preset; the error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown DiT preset {name!r}; choose one of {sorted(PRESETS)}") from None
