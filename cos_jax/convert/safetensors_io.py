"""A torch-free safetensors reader: parse the JSON header, read one tensor at a time.

Format: an 8-byte little-endian header length N, N bytes of JSON (`{name: {dtype, shape, data_offsets}}`,
plus an optional `__metadata__`), then the raw little-endian data. Offsets are relative to the data
section. BF16 and FP8 map to `ml_dtypes` types so no torch is needed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct

import ml_dtypes
import numpy as np

DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_MAX_HEADER = 100 * 1024 * 1024


class CorruptCheckpointError(ValueError):
    """A checkpoint file is truncated, malformed or missing."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: its file, byte range (absolute), dtype and shape."""

    name: str
    path: str
    dtype: np.dtype
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def read_header(path: str | os.PathLike) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """The tensors of a safetensors file (without reading their data) and its `__metadata__`.

    Raises `CorruptCheckpointError` naming the file when the header is malformed or the file is shorter
    than the header says (a truncated download).
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptCheckpointError(f"{path}: {size} bytes is too short to be a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > min(_MAX_HEADER, size - 8):
            raise CorruptCheckpointError(
                f"{path}: header length {n} does not fit a file of {size} bytes (truncated or not safetensors)"
            )
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorruptCheckpointError(f"{path}: the safetensors header is not valid JSON ({err})") from None
    base = 8 + n
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, entry in header.items():
        try:
            dtype = DTYPES[entry["dtype"]]
            shape = tuple(int(s) for s in entry["shape"])
            start, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CorruptCheckpointError(f"{path}: bad header entry for tensor {name!r}: {entry!r}") from None
        if end - start != math.prod(shape) * dtype.itemsize:
            raise CorruptCheckpointError(f"{path}: tensor {name!r} has {end - start} bytes for shape {shape} {dtype}")
        if base + end > size:
            raise CorruptCheckpointError(
                f"{path}: truncated: tensor {name!r} ends at byte {base + end} but the file has {size} bytes; "
                "download the file again"
            )
        tensors[name] = TensorInfo(name, path, dtype, shape, base + start, base + end)
    return tensors, metadata


def read_tensor(info: TensorInfo) -> np.ndarray:
    """Read one tensor into a fresh numpy array (no memory map is kept, so RSS holds only this tensor)."""
    out = np.empty(info.shape, info.dtype)
    view = memoryview(out.reshape(-1).view(np.uint8)) if out.size else memoryview(b"")
    with open(info.path, "rb") as f:
        f.seek(info.start)
        got = f.readinto(view) if out.size else 0
    if got != info.nbytes:
        raise CorruptCheckpointError(f"{info.path}: read {got} of {info.nbytes} bytes of tensor {info.name!r}")
    return out
