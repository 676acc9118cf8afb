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
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cos_jax.convert.dit_config import config_from_dict
from cos_jax.parallel import make_mesh, param_shardings
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
        mesh = make_mesh("", jax.devices()[:1])
    shardings = nnx.to_pure_dict(param_shardings(model, mesh))
    shapes = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    return jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
        shapes,
        shardings,
        is_leaf=lambda x: isinstance(x, NamedSharding | PartitionSpec),
    )


def storage_path(target: str, layer: int | None) -> tuple[str, ...]:
    """Where a tensor lives in a component checkpoint: block tensors per layer (`blocks.ffn_up.kernel.layer003`),
    so conversion can append them one batch at a time; `load_checkpoint` stacks them on the devices."""
    path = tuple(target.split("."))
    return path if layer is None else (*path, f"layer{layer:03d}")


def _restore(component_dir: str, target: dict, num_layers: int) -> dict:
    """Restore the first `num_layers` layers of every parameter of `target` (ShapeDtypeStructs with shardings)
    straight into their shardings; block parameters are stacked on the devices, one parameter at a time."""
    ocp = _ocp()
    flat = jax.tree_util.tree_flatten_with_path(target)[0]
    storage: dict = {}
    for keys, spec in flat:
        path = tuple(k.key for k in keys)
        if path[0] != "blocks":
            _set_path(storage, path, spec)
            continue
        sharding = NamedSharding(spec.sharding.mesh, PartitionSpec(*spec.sharding.spec[1:]))
        for i in range(num_layers):
            _set_path(storage, storage_path(".".join(path), i), jax.ShapeDtypeStruct(spec.shape[1:], spec.dtype,
                                                                                     sharding=sharding))  # fmt: skip
    loading = ocp.options.PyTreeOptions(loading=ocp.options.PyTreeOptions.Loading(partial_load=True))
    with ocp.Context(pytree_options=loading):
        restored = ocp.load(os.path.abspath(component_dir), storage)
    out: dict = {}
    for keys, spec in flat:
        path = tuple(k.key for k in keys)
        node = restored
        for p in path[:-1]:
            node = node[p]
        value = node.pop(path[-1])
        if path[0] == "blocks":
            layers = [value[f"layer{i:03d}"] for i in range(num_layers)]
            del value
            value = jax.jit(lambda *xs: jnp.stack(xs), out_shardings=spec.sharding)(*layers)
            del layers
        _set_path(out, path, value)
    return out


def _set_path(tree: dict, path: tuple[str, ...], value) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def load_checkpoint(
    path: str | os.PathLike,
    component: str | None = None,
    *,
    mesh: Mesh | None = None,
    param_dtype=None,
    num_layers: int | None = None,
) -> WanDiT:
    """Load one component of a converted checkpoint as a `WanDiT`, sharded over `mesh` by the logical-axis
    rules (`cos_jax.parallel`); without a mesh, on the first device. `param_dtype` defaults to the stored
    dtype (bf16 unless converted with fp32). `num_layers` keeps only the first blocks (for checks of
    full-size checkpoints on small hosts); only those are read."""
    path, component, manifest = _locate(os.fspath(path), component)
    entry = manifest["components"][component]
    if entry.get("kind") != "wan_dit":
        raise ValueError(f"{path}/{component} is a {entry.get('kind')!r}; load_checkpoint loads wan_dit components")
    cfg = config_from_dict(entry["config"])
    if num_layers is not None:
        if not 0 < num_layers <= cfg.num_layers:
            raise ValueError(f"num_layers={num_layers}; the checkpoint has {cfg.num_layers} layers")
        cfg = cfg.replace(num_layers=num_layers)
    model = abstract_dit(cfg, jnp.dtype(param_dtype or manifest["dtype"]))
    values = _restore(os.path.join(path, entry["path"]), abstract_params(model, mesh), cfg.num_layers)
    graphdef, state = nnx.split(model)
    nnx.replace_by_pure_dict(state, values)
    return nnx.merge(graphdef, state)
