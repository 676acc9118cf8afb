"""Converted checkpoints on disk: an Orbax checkpoint per component plus `manifest.json`, and the one entry
point that later code uses to load them, `load_checkpoint` (exported as `cos_jax.load`).

Layout of a converted checkpoint folder:
    manifest.json        format, version, source, dtype, boundary_ratio, per component: kind, config, LoRAs
    <component>/         an Orbax checkpoint of the component's parameter tree (cos-jax paths)
Components are `dit` (a single model) or `high_noise` + `low_noise` (an A14B pair).
Parameters restore straight into their target shardings from an abstract tree: each device receives
only its shards, and no host copy of the whole model is made.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cos_jax.convert.dit_config import config_from_dict
from cos_jax.parallel import param_shardings
from cos_jax.wan.dit import WanDiT, abstract_dit

MANIFEST = "manifest.json"
FORMAT = "cos-jax-checkpoint"
FORMAT_VERSION = 1
DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32", "float32": "float32"}


def _ocp():
    import orbax.checkpoint.experimental.v1 as ocp  # current Orbax API (v1); partial saves stream parameters

    return ocp


def save_params_partial(component_dir: str, params: dict) -> None:
    """Add a subtree of parameters to a component checkpoint that is being written (see `finalize`)."""
    _ocp().partial.save(component_dir, params)


def finalize(component_dir: str) -> None:
    """Commit a component checkpoint written with `save_params_partial`."""
    _ocp().partial.finalize(component_dir)


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a converted checkpoint folder; a clear error when the folder is not one."""
    path = os.fspath(path)
    file = os.path.join(path, MANIFEST)
    if not os.path.exists(file):
        hint = " (an interrupted conversion? run `cos-jax convert` again)" if ".incomplete-" in path else ""
        raise FileNotFoundError(f"{path}: no {MANIFEST}; not a converted cos-jax checkpoint{hint}")
    with open(file) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise ValueError(f"{file}: format {manifest.get('format')!r} v{manifest.get('version')} is not {FORMAT} v1")
    return manifest


def _locate(path: str, component: str | None) -> tuple[str, str, dict]:
    """(checkpoint folder, component name, manifest); `path` may also be a component folder."""
    if not os.path.exists(os.path.join(path, MANIFEST)) and os.path.exists(os.path.join(path, "..", MANIFEST)):
        component = component or os.path.basename(os.path.normpath(path))
        path = os.path.dirname(os.path.normpath(path))
    manifest = read_manifest(path)
    names = list(manifest["components"])
    if component is None:
        if len(names) != 1:
            raise ValueError(f"{path} holds components {names}; pass component= one of them")
        component = names[0]
    if component not in manifest["components"]:
        raise KeyError(f"{path}: no component {component!r}; it holds {names}")
    return path, component, manifest


def abstract_params(model: nnx.Module, mesh: Mesh | None = None) -> dict:
    """The model's parameter tree as `ShapeDtypeStruct`s carrying their target `NamedSharding`s."""
    if mesh is None:
        mesh = Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1, 1, 1), ("data", "fsdp", "context", "tensor"))
    shardings = nnx.to_pure_dict(param_shardings(model, mesh))
    shapes = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    return jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
        shapes,
        shardings,
        is_leaf=lambda x: isinstance(x, NamedSharding | PartitionSpec),
    )


def load_checkpoint(
    path: str | os.PathLike, component: str | None = None, *, mesh: Mesh | None = None, param_dtype=None
) -> WanDiT:
    """Load one component of a converted checkpoint as a `WanDiT`, sharded over `mesh` by the logical-axis
    rules (`cos_jax.parallel`); without a mesh, on the first device. `param_dtype` defaults to the stored
    dtype (bf16 unless converted with fp32)."""
    path, component, manifest = _locate(os.fspath(path), component)
    entry = manifest["components"][component]
    if entry.get("kind") != "wan_dit":
        raise ValueError(f"{path}/{component} is a {entry.get('kind')!r}; load_checkpoint loads wan_dit components")
    cfg = config_from_dict(entry["config"])
    dtype = jnp.dtype(param_dtype or manifest["dtype"])
    model = abstract_dit(cfg, dtype)
    target = abstract_params(model, mesh)
    restored = _ocp().load(os.path.abspath(os.path.join(path, entry["path"])), target)
    graphdef, state = nnx.split(model)
    nnx.replace_by_pure_dict(state, restored)
    return nnx.merge(graphdef, state)


def load_first_layers(
    path: str | os.PathLike, component: str | None = None, *, num_layers: int, param_dtype=jnp.float32
) -> WanDiT:
    """A `WanDiT` with only the first `num_layers` blocks of a converted component, restored one parameter at
    a time (peak host memory: one stacked parameter), for validating full-size checkpoints on a small host."""
    ocp = _ocp()
    path, component, manifest = _locate(os.fspath(path), component)
    entry = manifest["components"][component]
    full_cfg = config_from_dict(entry["config"])
    if not 0 < num_layers <= full_cfg.num_layers:
        raise ValueError(f"num_layers={num_layers}; the checkpoint has {full_cfg.num_layers} layers")
    cfg = full_cfg.replace(num_layers=num_layers)
    stored = abstract_params(abstract_dit(full_cfg, jnp.dtype(manifest["dtype"])))
    model = abstract_dit(cfg, param_dtype)
    graphdef, state = nnx.split(model)
    values = {}
    loading = ocp.options.PyTreeOptions(loading=ocp.options.PyTreeOptions.Loading(partial_load=True))
    with ocp.Context(pytree_options=loading):
        for keys, spec in jax.tree_util.tree_flatten_with_path(stored)[0]:
            names = [k.key for k in keys]
            subtree = spec
            for n in reversed(names):
                subtree = {n: subtree}
            leaf = ocp.load(os.path.abspath(os.path.join(path, entry["path"])), subtree)
            for n in names:
                leaf = leaf[n]
            array = np.asarray(leaf[:num_layers] if names[0] == "blocks" else leaf).astype(param_dtype)
            del leaf
            node = values
            for n in names[:-1]:
                node = node.setdefault(n, {})
            node[names[-1]] = jnp.asarray(array)
    nnx.replace_by_pure_dict(state, values)
    return nnx.merge(graphdef, state)
