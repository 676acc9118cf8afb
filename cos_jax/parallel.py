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

from cos_jax.errors import UsageError

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


def mesh_size(sizes: dict[str, int]) -> int:
    """Devices a mesh of these axis sizes (`parse_mesh_spec`) takes."""
    return int(np.prod(list(sizes.values())))


def make_mesh(spec: str = "", devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh over (data, fsdp, context, tensor). An empty spec puts every device on `fsdp`."""
    devices = list(devices if devices is not None else jax.devices())
    sizes = parse_mesh_spec(spec) if spec else {**dict.fromkeys(MESH_AXES, 1), "fsdp": len(devices)}
    total = mesh_size(sizes)
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
    """Place the model's parameters on the mesh according to the rules (across processes under
    `jax.distributed`, where every process holds the same weights)."""
    graphdef, state = nnx.split(model)
    shardings = param_shardings(model, mesh)
    placed = [getattr(v.get_value(), "sharding", None) for v in jax.tree.leaves(state, is_leaf=_is_variable)]
    if placed == jax.tree.leaves(shardings):
        return model  # already there (e.g. a session's experts, placed once)
    if jax.process_count() == 1:
        return nnx.merge(graphdef, jax.device_put(state, shardings))
    place = lambda v, sh: v.replace(global_array(v.get_value(), sh))
    return nnx.merge(graphdef, jax.tree.map(place, state, shardings, is_leaf=_is_variable))


def _is_variable(x) -> bool:
    return isinstance(x, nnx.Variable)


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, environ=None) -> bool:  # fmt: skip
    """Join a multi-process run (`jax.distributed.initialize`) when asked: by the arguments, or by the
    environment (`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`; `coordinator="auto"`
    lets JAX detect SLURM, Open MPI or a TPU pod). CPU processes talk through gloo. Returns whether it joined."""
    import os

    env = os.environ if environ is None else environ
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS")
    if coordinator is None:
        return False
    num_processes = num_processes if num_processes is not None else _int_env(env, "JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _int_env(env, "JAX_PROCESS_ID")
    if coordinator != "auto" and (num_processes is None or process_id is None):
        raise UsageError(f"coordinator {coordinator} needs the number of processes and this process's id "
                         "(--num-processes N --process-id I, or JAX_NUM_PROCESSES / JAX_PROCESS_ID)")  # fmt: skip
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes only; GPUs keep NCCL
    if coordinator == "auto":
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    return True


def _int_env(env, name: str) -> int | None:
    value = env.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise UsageError(f"{name}={value!r}: expected a non-negative integer")
    return int(value)


def global_array(x, sharding: NamedSharding) -> jax.Array:
    """A host value every process holds in full → one array placed by `sharding` (across processes)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def place_world_call(mesh: Mesh, experts, conditions, noise, plan, key, keep, start=None) -> tuple:
    """The arguments of a sampling call placed on `mesh`: the experts by the rules, the per-world leading
    axis of the conditions, the noise and a start state over the batch axes, the rest replicated (across
    processes)."""
    worlds = noise.shape[0]

    def place(x, per_world: bool = True):
        if not hasattr(x, "shape") or jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return x
        axes = ("batch",) if per_world and x.ndim and x.shape[0] == worlds else (None,)
        return global_array(x, NamedSharding(mesh, logical_to_spec(axes + (None,) * (x.ndim - 1), x.shape, mesh)))

    replicate = lambda tree: jax.tree.map(lambda x: place(x, per_world=False), tree)
    experts = tuple(shard_model(e, mesh) for e in experts)
    placed = jax.tree.map(place, conditions), place(noise), replicate(plan), key, replicate(keep)
    return experts, *placed, jax.tree.map(place, start)


def shard_world_call(fn, mesh: Mesh, experts, conditions, noise, plan, key, keep, start=None):
    """Run `fn(experts, conditions, noise, plan, key, keep, start)` (a sampling call) over `mesh` with its arguments
    placed by `place_world_call`; returns the outputs as host arrays (gathered from every process)."""
    from jax.experimental import multihost_utils

    with jax.set_mesh(mesh):
        out = fn(*place_world_call(mesh, experts, conditions, noise, plan, key, keep, start))
    return jax.tree.map(lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)), out)
