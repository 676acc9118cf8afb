"""Device meshes, logical-axis rules and sharding helpers.

Model code names axes logically (`embed`, `heads`, `mlp`, `batch`, `length`, …). Mesh axes (`data`,
`fsdp`, `context`, `tensor`) appear only in `LOGICAL_RULES` below. A mesh comes from a short spec such
as "fsdp=4,tensor=2" (unnamed axes have size 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "context", "tensor")

# logical axis -> mesh axes it may be split over (in order). Parameters and activations share the table.
LOGICAL_RULES: dict[str, tuple[str, ...]] = {
    # parameters
    "layers": (),
    "embed": ("fsdp", "context"),  # a context-parallel group also shares the weights (FSDP over both axes)
    "heads": ("tensor",),
    "mlp": ("tensor",),
    "text_embed": ("fsdp", "context"),
    "vocab": (),
    "freq": (),
    "modulation": (),
    "patch_in": (),
    "patch_out": (),
    # activations
    "batch": ("data", "fsdp"),
    "length": ("context",),
    "act_embed": (),
    "act_heads": ("tensor",),
}


def parse_mesh_spec(spec: str) -> dict[str, int]:
    """'fsdp=4,tensor=2' -> {'data': 1, 'fsdp': 4, 'context': 1, 'tensor': 2}."""
    sizes = dict.fromkeys(MESH_AXES, 1)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = part.partition("=")
        if name not in sizes or not value.isdigit() or int(value) < 1:
            raise ValueError(f"bad mesh spec entry {part!r} in {spec!r}; expected AXIS=N with AXIS in {MESH_AXES}")
        sizes[name] = int(value)
    return sizes


def make_mesh(spec: str = "", devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh over (data, fsdp, context, tensor). An empty spec puts every device on `fsdp`."""
    devices = list(devices if devices is not None else jax.devices())
    sizes = parse_mesh_spec(spec) if spec else {**dict.fromkeys(MESH_AXES, 1), "fsdp": len(devices)}
    total = int(np.prod(list(sizes.values())))
    if total != len(devices):
        raise ValueError(f"mesh spec {spec!r} needs {total} devices, {len(devices)} available")
    return Mesh(np.asarray(devices).reshape([sizes[a] for a in MESH_AXES]), MESH_AXES)


def logical_to_spec(
    axes: Sequence[str | None], shape: Sequence[int] | None = None, mesh: Mesh | None = None
) -> PartitionSpec:
    """Map logical axis names to a PartitionSpec. With `shape` and `mesh`, mesh axes that are missing, of
    size 1, used already, or that do not divide the dimension are dropped, so every spec is valid."""
    used: set[str] = set()
    out = []
    for i, name in enumerate(axes):
        if name is not None and name not in LOGICAL_RULES:
            raise KeyError(f"logical axis {name!r} has no rule; add it to cos_jax.parallel.LOGICAL_RULES")
        chosen = []
        size = 1
        for mesh_axis in LOGICAL_RULES.get(name, ()) if name else ():
            if mesh_axis in used:
                continue
            if mesh is not None:
                n = mesh.shape.get(mesh_axis, 1)
                if n == 1 or (shape is not None and shape[i] % (size * n)):
                    continue
                size *= n
            chosen.append(mesh_axis)
            used.add(mesh_axis)
        out.append(tuple(chosen) if len(chosen) > 1 else (chosen[0] if chosen else None))
    return PartitionSpec(*out)


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """Sharding constraint by logical names under the current `jax.set_mesh` mesh; a no-op without one."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_spec(axes, x.shape, mesh))


def param_shardings(model: nnx.Module, mesh: Mesh):
    """NamedShardings for every parameter of `model` (concrete or abstract), from its logical axes."""
    state = nnx.state(model)

    def to_sharding(var):
        axes = var.get_metadata().get("out_sharding") or (None,) * len(var.get_value().shape)
        return NamedSharding(mesh, logical_to_spec(axes, var.get_value().shape, mesh))

    return jax.tree.map(to_sharding, state, is_leaf=lambda v: isinstance(v, nnx.Variable))


def shard_model(model: nnx.Module, mesh: Mesh) -> nnx.Module:
    """Place the model's parameters on the mesh according to the rules."""
    graphdef, state = nnx.split(model)
    shardings = param_shardings(model, mesh)
    return nnx.merge(graphdef, jax.device_put(state, shardings))
