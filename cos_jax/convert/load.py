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


def dotted(path) -> str:
    """'blocks.self_attn.q.kernel' from a pytree key path."""
    return ".".join(str(getattr(p, "key", p)) for p in path)


def flatten_params(tree: Mapping) -> dict[str, np.ndarray]:
    """Nested params -> {dotted path: array}."""
    return {dotted(path): v for path, v in jax.tree_util.tree_flatten_with_path(dict(tree))[0]}


def fill_module(abstract_module: nnx.Module, flat: Mapping[str, np.ndarray], param_dtype, what: str) -> nnx.Module:
    """The module with every parameter taken from `flat` ({dotted path: array}), cast to `param_dtype`.

    Raises `KeyMismatchError` for parameters with no tensor, tensors of the wrong shape, and tensors that
    are not parameters of the module (a key-table error)."""
    graphdef, state = nnx.split(abstract_module)
    bad, unused = [], set(flat)

    def fill(path, spec):
        name = dotted(path)
        if name not in flat:
            raise KeyMismatchError(f"the key table has no row for {what} parameter {name}")
        unused.discard(name)
        if flat[name].shape != spec.shape:
            bad.append(f"{name}: checkpoint {flat[name].shape} vs model {spec.shape}")
        return jnp.asarray(flat[name], param_dtype)

    values = jax.tree_util.tree_map_with_path(fill, nnx.to_pure_dict(state))
    if bad:
        raise KeyMismatchError(f"{len(bad)} {what} tensors have the wrong shape: " + "; ".join(bad[:5]))
    if unused:
        raise KeyMismatchError(f"key-table targets that are not {what} parameters: {sorted(unused)[:5]}")
    nnx.replace_by_pure_dict(state, values)
    return nnx.merge(graphdef, state)


def dit_from_state_dict(
    state_dict: Mapping[str, np.ndarray], cfg: DiTConfig, layout: Layout | None = None, param_dtype=jnp.float32
) -> WanDiT:
    """A `WanDiT` holding the given weights (official or diffusers names; layout auto-detected)."""
    flat = flatten_params(to_cos_params(state_dict, cfg, layout))
    return fill_module(abstract_dit(cfg, param_dtype), flat, param_dtype, f"DiT ({cfg})")


def dit_to_state_dict(model: WanDiT, layout: Layout) -> dict[str, np.ndarray]:
    """The model's weights as PyTorch-named float32 numpy arrays."""
    pure = jax.tree.map(lambda x: np.asarray(x, np.float32), nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    return from_cos_params(pure, model.config, layout)
