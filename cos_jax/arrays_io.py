"""Reading arrays from files a user gives: the sizes their headers declare are checked against the file
before anything is allocated, so a truncated or forged .npy/.npz is an error naming the file, not a huge
allocation. Pickled arrays are refused."""

from __future__ import annotations

import functools
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cos_jax.errors import UsageError


@functools.cache
def _new_file_mode() -> int:
    """The mode `open()` gives a new file under this process's umask (mkstemp's files are owner-only); read
    once, since reading the umask means setting it for a moment."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call `write(tmp)` with a temporary path beside `path` (same suffix), then rename it to `path`: readers
    see the old file or the whole new one, never half of it (the temporary file is removed on failure). The
    file gets the permissions a plain `open()` would give it (the umask's), so others can read results."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], compressed: bool = False) -> Path:
    """Arrays to an .npz by `atomic_write` (through a file object, so numpy adds no suffix to the temp name)."""
    save = np.savez_compressed if compressed else np.savez

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            save(f, **arrays)

    return atomic_write(path, write)


def _declared_bytes(f) -> tuple[int, int]:
    """(bytes the array data needs, bytes of the header) of the .npy stream at f's position."""
    start = f.tell()
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise UsageError(f"is .npy format version {version[0]}.{version[1]}; save it with numpy's np.save (1.0 or 2.0)")
    shape, _fortran, dtype = readers[version](f)
    if dtype.hasobject:
        raise UsageError("holds Python objects (a pickle); save plain numeric arrays")
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, f.tell() - start


def check_array_file(path: str | os.PathLike) -> None:
    """Raise `UsageError` naming `path` unless every array in the .npy/.npz fits the bytes the file holds."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    with z.open(info) as f:
                        need, header = _declared_bytes(f)
                    if need > info.file_size - header:
                        raise UsageError(f"member {info.filename} declares {need} bytes of data but holds "
                                         f"{info.file_size - header}")  # fmt: skip
        else:
            with open(path, "rb") as f:
                need, header = _declared_bytes(f)
            if need > path.stat().st_size - header:
                raise UsageError(f"declares {need} bytes of data but holds {path.stat().st_size - header}")
    except UsageError as err:
        raise UsageError(f"{path}: {err}; the file is truncated or not a numpy array file") from None
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise UsageError(f"{path}: not a numpy .npy/.npz file ({err})") from None


def load_arrays(path: str | os.PathLike):
    """`np.load` of a user's .npy (an array) or .npz (a mapping), after `check_array_file`, without pickles."""
    check_array_file(path)
    return np.load(path, allow_pickle=False)
