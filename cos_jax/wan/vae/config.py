"""Frozen configs of the Wan causal 3D VAEs and the released presets (values: wan22.md §6.3, §6.4)."""

from __future__ import annotations

import dataclasses
import math

# fmt: off
WAN21_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517, -0.3632,
    -0.1922, -0.9497, 0.2503, -0.2921,
)
WAN21_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
    1.6382, 1.1253, 2.8251, 1.9160,
)
WAN22_MEAN = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
)
WAN22_STD = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
)
# fmt: on


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """One encoder down block or decoder up block: channels and the resampling it ends with."""

    in_dim: int
    out_dim: int
    resample: str | None  # 'downsample2d', 'downsample3d', 'upsample2d', 'upsample3d' or None
    resample_out: int  # output channels of the resample conv (up blocks only)
    temporal: bool  # the resample (and the Wan2.2 shortcut) also acts on time


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Static structure of a Wan causal 3D VAE (`WanVAE_` / diffusers `AutoencoderKLWan`)."""

    base_dim: int
    decoder_base_dim: int
    z_dim: int
    is_residual: bool  # Wan2.2: AvgDown3D / DupUp3D shortcuts, up blocks keep their width
    patch_size: int  # pixel patchify (2 for Wan2.2, 1 for none)
    latents_mean: tuple[float, ...]
    latents_std: tuple[float, ...]
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    image_channels: int = 3
    conv_precision: str = "highest"  # lax precision of every conv/matmul (fp32 parity on GPUs too)

    def __post_init__(self):
        if len(self.latents_mean) != self.z_dim or len(self.latents_std) != self.z_dim:
            raise ValueError(
                f"latents_mean/std need z_dim={self.z_dim} values each, got "
                f"{len(self.latents_mean)}/{len(self.latents_std)}"
            )
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ValueError(
                f"temporal_downsample needs len(dim_mult) - 1 = {len(self.dim_mult) - 1} flags, "
                f"got {self.temporal_downsample}"
            )
        if self.patch_size < 1:
            raise ValueError(f"patch_size={self.patch_size} must be >= 1")

    @property
    def spatial_stride(self) -> int:
        return self.patch_size * 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_stride(self) -> int:
        return 2 ** sum(self.temporal_downsample)

    @property
    def io_channels(self) -> int:
        """Channels at the encoder input / decoder output (pixels after patchify)."""
        return self.image_channels * self.patch_size**2

    def encoder_blocks(self) -> tuple[BlockPlan, ...]:
        dims = [self.base_dim * m for m in (1, *self.dim_mult)]
        last = len(self.dim_mult) - 1
        plans = []
        for i in range(len(self.dim_mult)):
            temporal = i != last and self.temporal_downsample[i]
            resample = None if i == last else ("downsample3d" if temporal else "downsample2d")
            plans.append(BlockPlan(dims[i], dims[i + 1], resample, dims[i + 1], temporal))
        return tuple(plans)

    def decoder_blocks(self) -> tuple[BlockPlan, ...]:
        dims = [self.decoder_base_dim * m for m in (self.dim_mult[-1], *self.dim_mult[::-1])]
        temporal_upsample = self.temporal_downsample[::-1]
        last = len(self.dim_mult) - 1
        plans = []
        for i in range(len(self.dim_mult)):
            # Wan2.1 up-sampling convs halve the width, so later blocks start from half the previous width.
            in_dim = dims[i] // 2 if i > 0 and not self.is_residual else dims[i]
            out_dim = dims[i + 1]
            temporal = i != last and temporal_upsample[i]
            resample = None if i == last else ("upsample3d" if temporal else "upsample2d")
            resample_out = out_dim if self.is_residual else out_dim // 2
            plans.append(BlockPlan(in_dim, out_dim, resample, resample_out, temporal))
        return tuple(plans)

    def latent_frames(self, frames: int) -> int:
        return 1 + (frames - 1) // self.temporal_stride

    def pixel_frames(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.temporal_stride

    def replace(self, **changes) -> VAEConfig:
        return dataclasses.replace(self, **changes)

    def small(self, width: int = 8, decoder_width: int | None = None) -> VAEConfig:
        """The same architecture at a tiny width (CPU tests); by default the decoder keeps its width ratio."""
        if decoder_width is None:
            decoder_width = max(1, math.ceil(width * self.decoder_base_dim / self.base_dim))
        return self.replace(base_dim=width, decoder_base_dim=decoder_width)


PRESETS: dict[str, VAEConfig] = {
    "wan21": VAEConfig(96, 96, 16, is_residual=False, patch_size=1, latents_mean=WAN21_MEAN, latents_std=WAN21_STD),
    "wan22": VAEConfig(160, 256, 48, is_residual=True, patch_size=2, latents_mean=WAN22_MEAN, latents_std=WAN22_STD),
}


def vae_preset(name: str) -> VAEConfig:
    """Return a named VAE preset ('wan21' or 'wan22'); the error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown VAE preset {name!r}; choose one of {sorted(PRESETS)}") from None
