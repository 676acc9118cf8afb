"""The kinds of component a converted checkpoint holds, and what conversion and loading need of each: how
to settle a source's layout and config, plan its tensors (strict: every source tensor used once, every
parameter filled), orient them, and build the abstract module they restore into.

- `wan_dit`: the Wan2.2 DiT (`dit`, or the A14B `high_noise` / `low_noise` experts), tables in `dit_keys`;
- `wan_vae`: the Wan2.1 / Wan2.2 VAE (`vae`), tables in `vae_keys`;
- `umt5_encoder`: the umT5 text encoder (`text_encoder`), tables in `t5_keys`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from flax import nnx

from cos_jax.convert import dit_keys, t5_keys, vae_keys
from cos_jax.convert.dit_config import config_from_dict, config_to_dict, match_preset
from cos_jax.convert.dit_keys import KeyMismatchError
from cos_jax.convert.layouts import Component, resolve_component
from cos_jax.convert.sources import TensorSource, open_tensors


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str  # the manifest's `kind`
    what: str  # for messages
    resolve: Callable[[Component], tuple[TensorSource, str, Any]]  # -> (source, layout, config)
    plan: Callable[[Any, Any, str], list]  # (source names, config, layout) -> [(rule, [source names])]
    forward: Callable[[Any, np.ndarray], np.ndarray]  # (rule, PyTorch tensor) -> cos-jax orientation
    backward: Callable[[Any, np.ndarray], np.ndarray]  # the inverse (used for shape messages)
    stacked: Callable[[Any], bool]  # block rules: one tensor per layer, stacked on a leading axis
    abstract: Callable[..., nnx.Module]  # (config, param_dtype) -> the module with ShapeDtypeStruct leaves
    config_to_dict: Callable[[Any], dict]
    config_from_dict: Callable[[Mapping], Any]
    preset: Callable[[Any], str | None]


def _tuples_to_lists(cfg) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def _lists_to_tuples(cls):
    return lambda d: cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _config(comp: Component, from_json, from_shapes):
    """The config from the component's config.json, or else from its tensor shapes; errors name the path."""
    try:
        return from_json(comp.config_json) if comp.config_json is not None else from_shapes()
    except (KeyError, ValueError) as err:
        raise type(err)(f"{comp.path}: {err.args[0]}") from None


def _resolve_vae(comp: Component):
    source = open_tensors(comp.path)
    layout = vae_keys.detect_layout(source.keys())
    shapes = {k: i.shape for k, i in source.infos.items()}
    config = _config(comp, vae_keys.vae_config_from_json, lambda: vae_keys.vae_config_from_shapes(shapes, layout))
    return source, layout, config


def _resolve_t5(comp: Component):
    source = open_tensors(comp.path)
    layout = t5_keys.detect_t5_layout(source.keys())
    shapes = {k: i.shape for k, i in source.infos.items()}
    config = _config(comp, t5_keys.t5_config_from_json, lambda: t5_keys.t5_config_from_shapes(shapes, layout))
    return source, layout, config


def _vae_preset(cfg) -> str | None:
    from cos_jax.wan.vae.config import PRESETS

    return next((name for name, p in PRESETS.items() if p == cfg), None)


def _t5_preset(cfg) -> str | None:
    from cos_jax.wan.t5 import UMT5_XXL

    return "umt5_xxl" if cfg == UMT5_XXL else None


def _abstract_dit(cfg, param_dtype):
    from cos_jax.wan.dit import abstract_dit

    return abstract_dit(cfg, param_dtype)


def _abstract_vae(cfg, param_dtype):
    from cos_jax.wan.vae.model import abstract_vae

    return abstract_vae(cfg, param_dtype)


def _abstract_t5(cfg, param_dtype):
    from cos_jax.wan.t5 import abstract_umt5

    return abstract_umt5(cfg, param_dtype)


def _vae_config_from_dict(d: Mapping):
    from cos_jax.wan.vae.config import VAEConfig

    return _lists_to_tuples(VAEConfig)(d)


def _t5_config_from_dict(d: Mapping):
    from cos_jax.wan.t5 import T5Config

    return T5Config(**d)


KINDS: dict[str, Kind] = {
    "wan_dit": Kind(
        name="wan_dit",
        what="DiT",
        resolve=resolve_component,
        plan=dit_keys.plan_sources,
        forward=dit_keys.forward_transform,
        backward=dit_keys.backward_transform,
        stacked=dit_keys.is_stacked,
        abstract=_abstract_dit,
        config_to_dict=config_to_dict,
        config_from_dict=config_from_dict,
        preset=match_preset,
    ),
    "wan_vae": Kind(
        name="wan_vae",
        what="VAE",
        resolve=_resolve_vae,
        plan=vae_keys.plan_vae_sources,
        forward=vae_keys.forward_transform,
        backward=vae_keys.backward_transform,
        stacked=lambda _: False,
        abstract=_abstract_vae,
        config_to_dict=_tuples_to_lists,
        config_from_dict=_vae_config_from_dict,
        preset=_vae_preset,
    ),
    "umt5_encoder": Kind(
        name="umt5_encoder",
        what="umT5",
        resolve=_resolve_t5,
        plan=t5_keys.plan_t5_sources,
        forward=dit_keys.forward_transform,
        backward=dit_keys.backward_transform,
        stacked=dit_keys.is_stacked,
        abstract=_abstract_t5,
        config_to_dict=_tuples_to_lists,
        config_from_dict=_t5_config_from_dict,
        preset=_t5_preset,
    ),
}
KIND_OF_EXTRA = {"vae": "wan_vae", "text_encoder": "umt5_encoder"}


def _shape_after(fn, rule, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape `fn(rule, x)` gives for an x of `shape`, without data (a zero-stride stand-in)."""
    dummy = np.lib.stride_tricks.as_strided(np.zeros((), np.uint8), shape=shape, strides=(0,) * len(shape))
    try:
        return tuple(fn(rule, dummy).shape)
    except (ValueError, IndexError):
        return None


def real_name(source: TensorSource, name: str) -> str:
    """The file's name of a planned tensor: plan names lack the single-file `model.diffusion_model.` prefix."""
    return name if name in source.infos else dit_keys.SINGLE_FILE_PREFIX + name


def check_shapes(kind: Kind, source: TensorSource, plan: list, config, layout: str, origin: str) -> None:
    """Every planned source tensor has the shape the module needs (headers only); the error names the first
    few tensors with their checkpoint and expected (PyTorch-orientation) shapes, the layout and the config."""
    flat = nnx.to_flat_state(nnx.state(kind.abstract(config, np.float32), nnx.Param))
    targets = {".".join(map(str, path)): tuple(var.get_value().shape) for path, var in flat}
    bad = []
    for rule, names in plan:
        want = targets[rule.target][1:] if kind.stacked(rule) else targets[rule.target]
        for n in names:
            got = source.infos[real_name(source, n)].shape
            if _shape_after(kind.forward, rule, got) != want:
                bad.append(f"{n}: checkpoint {got} vs model {_shape_after(kind.backward, rule, want)}")
    if bad:
        more = f" … and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise KeyMismatchError(
            f"{origin}: {kind.what} {layout} layout: {len(bad)} tensors have the wrong shape for {config}: "
            + "; ".join(bad[:5])
            + more
        )
