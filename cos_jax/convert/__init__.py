"""PyTorch checkpoints (official, diffusers, single file, DiffSynth LoRAs) to cos-jax Orbax checkpoints."""

from cos_jax.convert.checkpoint import load_checkpoint, read_manifest
from cos_jax.convert.convert import convert_checkpoint

__all__ = ["convert_checkpoint", "load_checkpoint", "read_manifest"]
