"""cos-jax: Wan2.2 video DiTs in functional JAX/Flax for studying Chain-of-Steps reasoning."""

from cos_jax.loading import load
from cos_jax.wan.config import PRESETS, DiTConfig, preset
from cos_jax.wan.dit import WanDiT, abstract_dit, count_params, init_dit

__all__ = ["PRESETS", "DiTConfig", "WanDiT", "abstract_dit", "count_params", "init_dit", "load", "preset"]
__version__ = "0.1.0"
