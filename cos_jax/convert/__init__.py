"""PyTorch checkpoints (official, diffusers, single file, DiffSynth LoRAs; DiT, VAE, umT5) to cos-jax Orbax
checkpoints."""

from cos_jax.convert.checkpoint import WanComponents, load_checkpoint, read_manifest
from cos_jax.convert.convert import convert_checkpoint

__all__ = ["WanComponents", "convert_checkpoint", "load_checkpoint", "read_manifest"]
