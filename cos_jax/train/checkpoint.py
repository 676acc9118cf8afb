"""Checkpoints of the toy trainer: the full state with Orbax (exact resume), and a compact weights file.

The weights file (`.npz`, bf16 stored as its bits) holds only the EMA and raw parameters: small enough
to keep in the repository between GPU leases and to ship in the package.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import ml_dtypes
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from cos_jax.arrays_io import load_arrays, write_npz
from cos_jax.train.flow import TrainState


def save_state(path: str | os.PathLike, state: TrainState) -> Path:
    """Full training state (Orbax; the write is atomic: an interrupted save leaves no finished checkpoint)."""
    path = Path(path).absolute()
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path, state, force=True)
    checkpointer.wait_until_finished()
    return path


def restore_state(path: str | os.PathLike, template: TrainState) -> TrainState:
    """Restore into the structure (and placement) of `template`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    return ocp.StandardCheckpointer().restore(Path(path).absolute(), abstract)


def save_weights(path: str | os.PathLike, trees: dict[str, nnx.State], meta: dict) -> Path:
    """Named parameter trees as bf16 bits in one .npz plus JSON metadata, written atomically."""
    path = Path(path)
    arrays = {"meta_json": np.asarray(json.dumps(meta))}
    for name, tree in trees.items():
        for key, value in _flatten(nnx.to_pure_dict(tree)).items():
            arrays[f"{name}/{key}"] = np.asarray(value, ml_dtypes.bfloat16).view(np.uint16)
    return write_npz(path, arrays, compressed=True)


def load_weights(path: str | os.PathLike, name: str, model: nnx.Module) -> nnx.Module:
    """Put the float32 values of tree `name` from a weights file into `model` (shapes checked)."""
    with load_arrays(path) as data:
        values = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"{name}/")}
    state = nnx.state(model, nnx.Param)
    pure = nnx.to_pure_dict(state)
    flat = _flatten(pure)
    missing = sorted(set(flat) - set(values))
    unexpected = sorted(set(values) - set(flat))
    if missing or unexpected:
        raise KeyError(
            f"{path}: tree {name!r} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for key, spec in flat.items():
        if values[key].shape != spec.shape:
            raise ValueError(f"{path}: {name}/{key} has shape {values[key].shape}, the model wants {spec.shape}")
    filled = _unflatten({k: v.view(ml_dtypes.bfloat16).astype(np.float32) for k, v in values.items()})
    nnx.replace_by_pure_dict(state, filled)
    nnx.update(model, state)
    return model


def read_meta(path: str | os.PathLike) -> dict:
    with load_arrays(path) as data:
        return json.loads(str(data["meta_json"]))


def total_steps(path: str | os.PathLike) -> int:
    """Training steps behind a weights file, runs it continued from included (its own step if not recorded)."""
    meta = read_meta(path)
    return int(meta.get("total_steps", meta.get("step", 0)))


def _flatten(tree, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _unflatten(flat: dict) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree
