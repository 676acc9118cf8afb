"""Print cos-jax vs diffusers `AutoencoderKLWan` parity at small widths (random weights, CPU).

    JAX_PLATFORMS=cpu python scripts/vae_parity.py [--frames 9] [--width 8]

For each VAE: encode and decode max|Δ|/max|ref| in float32, chunked-vs-full-sequence gaps, and the same
comparison in float64 (with diffusers' float32 cast around nearest upsampling removed).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cos_jax.convert import vae_keys, vae_reference
from cos_jax.wan.vae import vae_decode, vae_encode, vae_preset


def _rel(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _jax(x):
    return jnp.asarray(x.transpose(0, 2, 3, 4, 1))


def _torch_layout(x):
    return np.asarray(x).transpose(0, 4, 1, 2, 3)


def compare(cfg, frames: int, dtype) -> dict:
    ref = vae_reference.random_reference_vae(cfg, seed=0)
    ref = ref.double() if dtype == np.float64 else ref
    weights = {k: v.numpy() for k, v in ref.state_dict().items()}
    model = vae_keys.vae_from_state_dict(weights, cfg, param_dtype=jnp.dtype(dtype))
    rng = np.random.default_rng(1)
    size = 2 * cfg.spatial_stride
    video = rng.uniform(-1, 1, (1, 3, frames, size, size)).astype(dtype)
    latents = rng.normal(size=(1, cfg.z_dim, cfg.latent_frames(frames), 2, 2)).astype(dtype)
    z = _torch_layout(vae_encode(model, _jax(video), True))
    x = _torch_layout(vae_decode(model, _jax(latents), True))
    return {
        "encode": _rel(z, vae_reference.reference_encode(ref, cfg, video)),
        "decode": _rel(x, vae_reference.reference_decode(ref, cfg, latents)),
        "encode chunked-full": _rel(z, _torch_layout(vae_encode(model, _jax(video), False))),
        "decode chunked-full": _rel(x, _torch_layout(vae_decode(model, _jax(latents), False))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--width", type=int, default=8)
    args = parser.parse_args()
    configs = {
        "wan21": vae_preset("wan21").small(args.width),
        "wan22": vae_preset("wan22").small(args.width, 2 * args.width),
    }
    for name, cfg in configs.items():
        print(name, "float32", {k: f"{v:.2e}" for k, v in compare(cfg, args.frames, np.float32).items()})
        with pytest.MonkeyPatch.context() as patch, jax.enable_x64(True):
            vae_reference.exact_upsampling(patch)
            print(name, "float64", {k: f"{v:.2e}" for k, v in compare(cfg, args.frames, np.float64).items()})


if __name__ == "__main__":
    main()
