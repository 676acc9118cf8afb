"""Tensor sources: one safetensors file, a sharded set with its `*.safetensors.index.json`, or a `.pth`.

A `TensorSource` knows every tensor's name, shape, dtype and size from the headers alone and reads one
tensor at a time, so a conversion never holds more than the tensors it is working on.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import ml_dtypes
import numpy as np

from cos_jax.convert.safetensors_io import CorruptCheckpointError, TensorInfo, read_header, read_tensor

INDEX_SUFFIX = ".safetensors.index.json"
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


@dataclasses.dataclass
class TensorSource:
    """Lazily readable named tensors spread over one or more files."""

    infos: dict[str, TensorInfo]
    files: list[str]
    _torch_tensors: dict | None = None  # for .pth sources: name -> memory-mapped torch tensor

    def read(self, name: str) -> np.ndarray:
        if self._torch_tensors is not None:
            return _torch_to_numpy(self._torch_tensors[name])
        return read_tensor(self.infos[name])

    @property
    def total_bytes(self) -> int:
        return sum(i.nbytes for i in self.infos.values())

    def keys(self):
        return self.infos.keys()


def open_tensors(path: str | os.PathLike) -> TensorSource:
    """Open a `.safetensors` file, an index json, a folder holding either, or a torch `.pth` file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        indexes = sorted(glob.glob(os.path.join(path, "*" + INDEX_SUFFIX)))
        if len(indexes) == 1:
            return _open_index(indexes[0])
        if len(indexes) > 1:
            raise CorruptCheckpointError(f"{path}: several index files {indexes}; point at one of them")
        files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
        if not files:
            raise FileNotFoundError(f"{path}: no *.safetensors or {INDEX_SUFFIX} file in this folder")
        return _open_files(files)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.endswith(INDEX_SUFFIX):
        return _open_index(path)
    if path.endswith(".safetensors"):
        return _open_files([path])
    if path.endswith(TORCH_SUFFIXES):
        return _open_torch(path)
    raise ValueError(f"{path}: unknown checkpoint file type; expected .safetensors, {INDEX_SUFFIX} or .pth")


def _open_files(files: list[str]) -> TensorSource:
    infos: dict[str, TensorInfo] = {}
    for f in files:
        tensors, _ = read_header(f)
        for name, info in tensors.items():
            if name in infos:
                raise CorruptCheckpointError(f"tensor {name!r} appears in both {infos[name].path} and {f}")
            infos[name] = info
    return TensorSource(infos, list(files))


def _open_index(index_path: str) -> TensorSource:
    """A sharded checkpoint: every shard must exist and hold exactly the tensors the index assigns to it."""
    folder = os.path.dirname(index_path)
    try:
        with open(index_path) as f:
            weight_map: dict[str, str] = json.load(f)["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CorruptCheckpointError(f"{index_path}: not a valid safetensors index ({err!r})") from None
    shards = sorted(set(weight_map.values()))
    missing = [s for s in shards if not os.path.exists(os.path.join(folder, s))]
    if missing:
        raise CorruptCheckpointError(
            f"{index_path}: {len(missing)} of {len(shards)} shards are missing: {', '.join(missing[:5])}; "
            "download them into the same folder"
        )
    source = _open_files([os.path.join(folder, s) for s in shards])
    wrong = [
        n for n, s in weight_map.items() if n not in source.infos or source.infos[n].path != os.path.join(folder, s)
    ]
    extra = [n for n in source.infos if n not in weight_map]
    if wrong or extra:
        raise CorruptCheckpointError(
            f"{index_path}: the index and the shards disagree: {len(wrong)} indexed tensors not in their shard "
            f"({', '.join(sorted(wrong)[:5])}), {len(extra)} shard tensors not indexed ({', '.join(sorted(extra)[:5])})"
        )
    return source


def _open_torch(path: str) -> TensorSource:
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"{path} is a PyTorch pickle; reading it needs torch (pip install torch), or convert it to "
            "safetensors first"
        ) from None
    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    infos = {}
    for name, t in tensors.items():
        dtype = np.dtype(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else np.dtype(str(t.dtype).split(".")[-1])
        nbytes = t.numel() * t.element_size()
        infos[name] = TensorInfo(name, path, dtype, tuple(t.shape), 0, nbytes)
    return TensorSource(infos, [path], tensors)


def _torch_to_numpy(t) -> np.ndarray:
    import torch

    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().copy().view(ml_dtypes.bfloat16)
    return t.numpy().copy()
