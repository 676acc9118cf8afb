"""cos-jax: Wan2.2 video DiTs in functional JAX/Flax for studying Chain-of-Steps reasoning.

Top-level names are imported lazily, so `import cos_jax.tasks` does not load the model stack.
"""

from importlib import import_module

_EXPORTS = {
    "PRESETS": "cos_jax.wan.config",
    "DiTConfig": "cos_jax.wan.config",
    "preset": "cos_jax.wan.config",
    "WanDiT": "cos_jax.wan.dit",
    "abstract_dit": "cos_jax.wan.dit",
    "count_params": "cos_jax.wan.dit",
    "init_dit": "cos_jax.wan.dit",
    "load": "cos_jax.loading",
    "sample": "cos_jax.sampling.api",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cos_jax' has no attribute {name!r}")
