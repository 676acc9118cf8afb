"""Build a cos-jax DiT from PyTorch-named tensors (numpy), strictly checked against the model's shapes."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cos_jax.convert.dit_keys import KeyMismatchError, Layout, from_cos_params, to_cos_params
from cos_jax.wan.config import DiTConfig
from cos_jax.wan.dit import WanDiT, abstract_dit


def dit_from_state_dict(
    state_dict: Mapping[str, np.ndarray], cfg: DiTConfig, layout: Layout | None = None, param_dtype=jnp.float32
) -> WanDiT:
    """A `WanDiT` holding the given weights (official or diffusers names; layout auto-detected)."""
    params = to_cos_params(state_dict, cfg, layout)
    graphdef, abstract = nnx.split(abstract_dit(cfg, param_dtype))
    expected = nnx.to_pure_dict(abstract)
    bad = []

    def fill(path, spec):
        name = ".".join(str(getattr(p, "key", p)) for p in path)
        value = params
        for p in path:
            value = value[getattr(p, "key", p)]
        if value.shape != spec.shape:
            bad.append(f"{name}: checkpoint {value.shape} vs model {spec.shape}")
        return jnp.asarray(value, param_dtype)

    values = jax.tree_util.tree_map_with_path(fill, expected)
    if bad:
        raise KeyMismatchError(f"{len(bad)} tensors have the wrong shape for {cfg}: " + "; ".join(bad[:5]))
    nnx.replace_by_pure_dict(abstract, values)
    return nnx.merge(graphdef, abstract)


def dit_to_state_dict(model: WanDiT, layout: Layout) -> dict[str, np.ndarray]:
    """The model's weights as PyTorch-named float32 numpy arrays."""
    pure = jax.tree.map(lambda x: np.asarray(x, np.float32), nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    return from_cos_params(pure, model.config, layout)
