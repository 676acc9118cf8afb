"""Streaming conversion of PyTorch DiT checkpoints (official, diffusers, single file) to cos-jax Orbax
checkpoints, optionally merging LoRAs.

Everything is checked from the file headers before any data is read: every source tensor used exactly
once, every parameter filled, every shape right, every LoRA pair fitting. Then tensors are read one at a
time, LoRA-merged, transformed, cast and appended to the component's Orbax checkpoint in batches of a few
hundred MB (block tensors are stored per layer; `load_checkpoint` stacks them on the devices), so peak
memory does not grow with the model. The output is written to `<out>.incomplete-<pid>` and renamed to
`<out>` only when complete.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import shutil
import time

import numpy as np
from tqdm.auto import tqdm

from cos_jax.convert import checkpoint
from cos_jax.convert.dit_config import config_to_dict, match_preset
from cos_jax.convert.dit_keys import (
    SINGLE_FILE_PREFIX,
    KeyMismatchError,
    Layout,
    forward_transform,
    is_stacked,
    plan_sources,
    source_shape,
    target_shapes,
)
from cos_jax.convert.layouts import DEFAULT_BOUNDARY, CheckpointSet, discover, resolve_component
from cos_jax.convert.lora import Lora, LoraMismatchError, load_lora
from cos_jax.convert.sources import TensorSource
from cos_jax.wan.config import DiTConfig


@dataclasses.dataclass
class _Job:
    name: str
    source: TensorSource
    layout: Layout
    config: DiTConfig
    plan: list
    loras: list[Lora]

    @property
    def bytes(self) -> int:
        return self.source.total_bytes


class _Progress:
    """A tqdm bar over bytes that also shows tensors done / total."""

    def __init__(self, total_bytes: int, total_tensors: int, enabled: bool):
        self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled,
                        desc="convert")  # fmt: skip
        self.done, self.total = 0, total_tensors

    def advance(self, nbytes: int) -> None:
        self.done += 1
        self.bar.update(nbytes)
        self.bar.set_postfix_str(f"{self.done}/{self.total} tensors", refresh=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def _real_name(source: TensorSource, name: str) -> str:
    return name if name in source.infos else SINGLE_FILE_PREFIX + name


def _check_shapes(job: _Job, origin: str) -> None:
    shapes = target_shapes(job.config)
    bad = []
    for rule, names in job.plan:
        want = source_shape(rule, shapes[rule.target])
        for n in names:
            got = job.source.infos[_real_name(job.source, n)].shape
            if got != want:
                bad.append(f"{n}: checkpoint {got} vs model {want}")
    if bad:
        more = f" … and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise KeyMismatchError(
            f"{origin}: {job.layout} layout: {len(bad)} tensors have the wrong shape for {job.config}: "
            + "; ".join(bad[:5])
            + more
        )


def _assign_loras(names: list[str], lora: str | None, lora_high: str | None, lora_low: str | None) -> dict:
    wanted = {}
    if lora is not None:
        if names != ["dit"]:
            raise LoraMismatchError(
                f"--lora applies to a single DiT; this checkpoint has {names}: use --lora-high/--lora-low"
            )
        wanted["dit"] = lora
    for comp, file in (("high_noise", lora_high), ("low_noise", lora_low)):
        if file is not None:
            if comp not in names:
                raise LoraMismatchError(f"a {comp} LoRA was given but the checkpoint has no {comp} expert ({names})")
            wanted[comp] = file
    return wanted


def plan_conversion(
    src: str, *, lora=None, lora_high=None, lora_low=None, lora_scale=1.0, layout=None, config=None
) -> tuple[list[_Job], CheckpointSet]:
    """Open and check everything (headers only). Raises before anything is written."""
    found = discover(src)
    loras = _assign_loras(list(found.components), lora, lora_high, lora_low)
    jobs = []
    for name, comp in found.components.items():
        source, lay, cfg = resolve_component(comp, layout, config)
        plan = plan_sources(source.keys(), cfg, lay)
        job = _Job(name, source, lay, cfg, plan, [])
        _check_shapes(job, comp.path)
        if name in loras:
            job.loras.append(load_lora(loras[name], cfg, lora_scale))
        jobs.append(job)
    return jobs, found


def _converted_tensors(job: _Job, dtype: np.dtype, bar):
    """Yield (storage path, array) for every source tensor in plan order: read, LoRA-merged, transformed, cast."""
    for rule, names in job.plan:
        for i, name in enumerate(names):
            real = _real_name(job.source, name)
            x = job.source.read(real)
            layer = i if is_stacked(rule) else None
            for lora in job.loras:
                delta = lora.delta(rule.target, layer)
                if delta is not None:
                    x = x.astype(np.float32) + delta
            value = np.ascontiguousarray(forward_transform(rule, x), dtype=dtype)
            del x
            bar.advance(job.source.infos[real].nbytes)
            yield checkpoint.storage_path(rule.target, layer), value


# Each Orbax partial save costs a little more than the previous one (it merges with what is on disk), so a
# component is written in at most about this many batches; larger models get larger batches.
MAX_BATCHES = 128


def _write_component(job: _Job, comp_dir: str, dtype: np.dtype, bar, batch_bytes: int) -> None:
    """Append the tensors to the Orbax checkpoint in batches of about `batch_bytes` (raised so that there are
    at most ~`MAX_BATCHES` batches), then commit it."""
    output_bytes = dtype.itemsize * sum(math.prod(info.shape) for info in job.source.infos.values())
    batch_bytes = max(batch_bytes, output_bytes // MAX_BATCHES)
    pending: dict = {}
    size = 0
    for path, value in _converted_tensors(job, dtype, bar):
        _set_path(pending, path, value)
        size += value.nbytes
        del value
        if size >= batch_bytes:
            checkpoint.save_params_partial(comp_dir, pending)
            pending, size = {}, 0
            _release_freed_memory()
    if pending:
        checkpoint.save_params_partial(comp_dir, pending)
    del pending
    checkpoint.finalize(comp_dir)
    _release_freed_memory()


def _set_path(tree: dict, path: tuple[str, ...], value) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise, inflating RSS between batches)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def convert_checkpoint(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    lora: str | None = None,
    lora_high: str | None = None,
    lora_low: str | None = None,
    lora_scale: float = 1.0,
    dtype: str = "bf16",
    layout: Layout | None = None,
    config: DiTConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
    batch_bytes: int = 64 << 20,
) -> dict:
    """Convert `src` (any supported layout) to a cos-jax checkpoint folder `out`; returns the manifest.

    Converted tensors are appended to the Orbax checkpoint in batches of about `batch_bytes` (at least
    1/`MAX_BATCHES` of the component), so peak memory is a small multiple of max(batch, largest tensor)."""
    src, out = os.fspath(src), os.path.abspath(os.fspath(out))
    if dtype not in checkpoint.DTYPES:
        raise ValueError(f"dtype {dtype!r}; choose bf16 or fp32")
    np_dtype = np.dtype(checkpoint.DTYPES[dtype]) if dtype in ("fp32", "float32") else _bf16()
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out} exists; remove it or pass overwrite=True (--overwrite)")
    jobs, found = plan_conversion(
        src, lora=lora, lora_high=lora_high, lora_low=lora_low, lora_scale=lora_scale, layout=layout, config=config
    )
    _remove_stale_partials(out)
    tmp = f"{out}.incomplete-{os.getpid()}"
    os.makedirs(tmp)
    start = time.perf_counter()
    total = sum(j.bytes for j in jobs)
    try:
        with _Progress(total, sum(len(j.source.infos) for j in jobs), progress) as bar:
            for job in jobs:
                _write_component(job, os.path.join(tmp, job.name), np_dtype, bar, batch_bytes)
        seconds = time.perf_counter() - start
        manifest = _manifest(src, found, jobs, checkpoint.DTYPES[dtype], total, seconds)
        with open(os.path.join(tmp, checkpoint.MANIFEST), "w") as f:
            json_dump(manifest, f)
        if os.path.exists(out):
            old = f"{out}.old-{os.getpid()}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _remove_stale_partials(out: str) -> None:
    """Delete `<out>.incomplete-<pid>` folders left by conversions that were killed (their pid is gone)."""
    parent, base = os.path.split(out)
    for name in os.listdir(parent or "."):
        pid = name.removeprefix(f"{base}.incomplete-")
        if name.startswith(f"{base}.incomplete-") and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bf16() -> np.dtype:
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def json_dump(obj, f) -> None:
    import json

    json.dump(obj, f, indent=2)
    f.write("\n")


def _manifest(src: str, found, jobs: list[_Job], dtype: str, total: int, seconds: float) -> dict:
    boundary = found.boundary_ratio
    boundary_origin = "model_index.json" if boundary is not None else None
    if boundary is None and len(jobs) == 2:
        boundary = DEFAULT_BOUNDARY.get(jobs[0].config.model_type)
        boundary_origin = "official default for the model type" if boundary is not None else None
    from cos_jax import __version__

    return {
        "format": checkpoint.FORMAT,
        "version": checkpoint.FORMAT_VERSION,
        "cos_jax_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "source": src,
        "source_kind": found.kind,
        "dtype": dtype,
        "boundary_ratio": boundary,
        "boundary_ratio_from": boundary_origin,
        "bytes_read": total,
        "seconds": round(seconds, 3),
        "components": {
            j.name: {
                "kind": "wan_dit",
                "path": j.name,
                "layout": j.layout,
                "config": config_to_dict(j.config),
                "preset": match_preset(j.config),
                "source_files": [
                    os.path.relpath(f, src) if os.path.isdir(src) else os.path.basename(f) for f in j.source.files
                ],
                "tensors": len(j.source.infos),
                "loras": [lora.summary() for lora in j.loras],
            }
            for j in jobs
        },
    }
