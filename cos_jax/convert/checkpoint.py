"""Converted checkpoints on disk: an Orbax checkpoint per component plus `manifest.json`, and the one entry
point that later code uses to load them, `load_checkpoint` (exported as `cos_jax.load`).

Layout of a converted checkpoint folder:
    manifest.json        format, version, source, dtype, boundary_ratio, per component: kind, config, dtype,
                         source files, LoRAs
    <component>/         an Orbax checkpoint of the component's parameter tree (cos-jax paths)
    tokenizer/           the tokenizer files, copied (`tokenizer.json` ...)
Components: `dit` (a single model) or `high_noise` + `low_noise` (an A14B pair) of kind `wan_dit`; `vae`
(`wan_vae`); `text_encoder` (`umt5_encoder`); `tokenizer` (kind `tokenizer`, files only).
Parameters restore straight into their target shardings from an abstract tree: each device receives
only its shards, and no host copy of the whole model is made.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cos_jax.convert.kinds import KINDS
from cos_jax.parallel import make_mesh, param_shardings
from cos_jax.wan.dit import WanDiT
from cos_jax.wan.t5 import UMT5Encoder
from cos_jax.wan.vae.model import WanVAE

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


def _locate(path: str) -> tuple[str, str | None, dict]:
    """(checkpoint folder, component named by the path or None, manifest); `path` may be a component folder."""
    component = None
    if not os.path.exists(os.path.join(path, MANIFEST)) and os.path.exists(os.path.join(path, "..", MANIFEST)):
        component = os.path.basename(os.path.normpath(path))
        path = os.path.dirname(os.path.normpath(path))
    return path, component, read_manifest(path)


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


def restore_arrays(component_dir: str, specs: dict[tuple[str, ...], jax.ShapeDtypeStruct]) -> dict:
    """Read only the given storage paths of a component checkpoint, each straight into the sharding (and
    dtype) of its `ShapeDtypeStruct`; returns {storage path: array}."""
    ocp = _ocp()
    storage: dict = {}
    for path, spec in specs.items():
        _set_path(storage, path, spec)
    loading = ocp.options.PyTreeOptions(loading=ocp.options.PyTreeOptions.Loading(partial_load=True))
    with ocp.Context(pytree_options=loading):
        restored = ocp.load(os.path.abspath(component_dir), storage)
    out = {}
    for path in specs:
        node = restored
        for p in path[:-1]:
            node = node[p]
        out[path] = node.pop(path[-1])
    return out


def _restore(component_dir: str, target: dict, num_layers: int) -> dict:
    """Restore the first `num_layers` layers of every parameter of `target` (ShapeDtypeStructs with shardings)
    straight into their shardings; block parameters are stacked on the devices, one parameter at a time."""
    flat = jax.tree_util.tree_flatten_with_path(target)[0]
    specs: dict = {}
    for keys, spec in flat:
        path = tuple(k.key for k in keys)
        if path[0] != "blocks":
            specs[path] = spec
            continue
        sharding = NamedSharding(spec.sharding.mesh, PartitionSpec(*spec.sharding.spec[1:]))
        for i in range(num_layers):
            specs[storage_path(".".join(path), i)] = jax.ShapeDtypeStruct(spec.shape[1:], spec.dtype, sharding=sharding)
    restored = restore_arrays(component_dir, specs)
    out: dict = {}
    for keys, spec in flat:
        path = tuple(k.key for k in keys)
        if path[0] == "blocks":
            layers = [restored.pop(storage_path(".".join(path), i)) for i in range(num_layers)]
            value = jax.jit(lambda *xs: jnp.stack(xs), out_shardings=spec.sharding)(*layers)
            del layers
        else:
            value = restored.pop(path)
        _set_path(out, path, value)
    return out


def _set_path(tree: dict, path: tuple[str, ...], value) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


@dataclasses.dataclass(frozen=True)
class WanComponents:
    """The components of a converted checkpoint folder; a field is None when the folder lacks the component
    or it was not asked for. `tokenizer` is the folder holding `tokenizer.json` (for `PromptTokenizer`)."""

    dit: WanDiT | None = None
    high_noise: WanDiT | None = None
    low_noise: WanDiT | None = None
    vae: WanVAE | None = None
    text_encoder: UMT5Encoder | None = None
    tokenizer: str | None = None
    manifest: dict = dataclasses.field(default_factory=dict)

    @property
    def boundary_ratio(self) -> float | None:
        """The A14B expert switch (high-noise at t >= boundary · 1000), from the manifest."""
        return self.manifest.get("boundary_ratio")

    @property
    def experts(self) -> dict[str, WanDiT]:
        """The DiTs that were loaded, by component name."""
        return {n: m for n in ("dit", "high_noise", "low_noise") if (m := getattr(self, n)) is not None}


COMPONENTS = tuple(f.name for f in dataclasses.fields(WanComponents) if f.name != "manifest")


def load_checkpoint(
    path: str | os.PathLike,
    component: str | Sequence[str] | None = None,
    *,
    mesh: Mesh | None = None,
    param_dtype=None,
    num_layers: int | None = None,
):
    """Load a converted checkpoint folder.

    - `component=None` (and `path` the folder): every component, as `WanComponents`;
    - `component="high_noise"` (or `path` a component folder, e.g. `out/vae`): that one component, as a
      `WanDiT`, `WanVAE` or `UMT5Encoder` (the tokenizer: its folder's path);
    - `component=("text_encoder", "tokenizer")`: only those, as `WanComponents`.

    Parameters are sharded over `mesh` by the logical-axis rules (`cos_jax.parallel`); without a mesh they go
    to the first device. `param_dtype` defaults to each component's stored dtype. `num_layers` keeps only the
    first blocks of DiTs (for checks of full-size checkpoints on small hosts); only those are read."""
    path, named, manifest = _locate(os.fspath(path))
    component = component or named
    load = lambda name: _load_component(path, name, manifest, mesh, param_dtype, num_layers)
    if isinstance(component, str):
        return load(component)
    names = list(manifest["components"]) if component is None else list(component)
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise KeyError(f"{path}: component {unknown[0]!r} is not one of {COMPONENTS}")
    return WanComponents(**{name: load(name) for name in names}, manifest=manifest)


def _load_component(path: str, name: str, manifest: dict, mesh, param_dtype, num_layers):
    entry = manifest["components"].get(name)
    if entry is None:
        raise KeyError(f"{path}: no component {name!r}; it holds {list(manifest['components'])}")
    if entry["kind"] == "tokenizer":
        return os.path.join(path, entry["path"])
    if entry["kind"] not in KINDS:
        raise ValueError(f"{path}/{name}: unknown kind {entry['kind']!r} (written by a newer cos-jax?)")
    kind = KINDS[entry["kind"]]
    cfg = kind.config_from_dict(entry["config"])
    if num_layers is not None and entry["kind"] == "wan_dit":
        if not 0 < num_layers <= cfg.num_layers:
            raise ValueError(f"num_layers={num_layers}; the checkpoint has {cfg.num_layers} layers")
        cfg = cfg.replace(num_layers=num_layers)
    model = kind.abstract(cfg, jnp.dtype(param_dtype or entry.get("dtype", manifest["dtype"])))
    values = _restore(os.path.join(path, entry["path"]), abstract_params(model, mesh), getattr(cfg, "num_layers", 0))
    graphdef, state = nnx.split(model)
    nnx.replace_by_pure_dict(state, values)
    return nnx.merge(graphdef, state)
