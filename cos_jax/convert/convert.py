"""Streaming conversion of PyTorch Wan2.2 checkpoints (official, diffusers, single file) to cos-jax Orbax
checkpoints: the DiT(s), optionally merging LoRAs, and, from model folders, the VAE, the umT5 text encoder
and the tokenizer files.

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
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from cos_jax.convert import checkpoint
from cos_jax.convert.dit_keys import KeyMismatchError, Layout
from cos_jax.convert.expect import check_expected, component_summary, read_expected
from cos_jax.convert.kinds import KIND_OF_EXTRA, KINDS, Kind, check_shapes, real_name
from cos_jax.convert.layouts import DEFAULT_BOUNDARY, LOOKED_FOR, CheckpointSet, discover, resolve_component
from cos_jax.convert.lora import Lora, LoraMismatchError, load_lora
from cos_jax.convert.sources import TensorSource
from cos_jax.wan.config import DiTConfig


@dataclasses.dataclass
class _Job:
    name: str  # the component: dit, high_noise, low_noise, vae, text_encoder
    kind: Kind
    origin: str  # the component's source path
    source: TensorSource
    layout: str
    config: object
    plan: list
    dtype: np.dtype
    loras: list[Lora]

    @property
    def bytes(self) -> int:
        return self.source.total_bytes


# `--components` choices -> the components they select
SELECTABLE = {"dit": ("dit", "high_noise", "low_noise"), "vae": ("vae",), "text": ("text_encoder", "tokenizer")}


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


def _selected(components: str | Sequence[str] | None, found: CheckpointSet) -> set[str]:
    """The component names to convert: all found by default; asking for one that is missing is an error."""
    present = {*found.components, *found.extras, *(["tokenizer"] if found.tokenizer else [])}
    if components is None:
        return present
    wanted = [c.strip() for c in components.split(",")] if isinstance(components, str) else list(components)
    unknown = [c for c in wanted if c not in SELECTABLE]
    if unknown:
        raise ValueError(f"unknown component {unknown[0]!r}; choose from {', '.join(SELECTABLE)}")
    chosen = {n for c in wanted for n in SELECTABLE[c]}
    for c in wanted:
        if c == "dit" and not present & set(SELECTABLE["dit"]):
            raise FileNotFoundError(f"{found.root}: --components dit: no Wan DiT found")
        for n in SELECTABLE[c] if c != "dit" else ():
            if n not in present:
                raise FileNotFoundError(f"{found.root}: --components {c}: no {n} found; looked for {LOOKED_FOR[n]}")
    return chosen & present


def plan_conversion(
    src: str,
    *,
    lora=None,
    lora_high=None,
    lora_low=None,
    lora_scale=1.0,
    layout=None,
    config=None,
    components=None,
    dtype: str = "bf16",
    vae_dtype: str = "fp32",
) -> tuple[list[_Job], CheckpointSet, set[str]]:
    """Open and check everything (headers only): (jobs, what was found, the selected component names).
    Raises before anything is written."""
    found = discover(src)
    selected = _selected(components, found)
    dits = [n for n in found.components if n in selected]
    loras = _assign_loras(dits, lora, lora_high, lora_low) if dits else {}
    if not dits and any((lora, lora_high, lora_low)):
        raise LoraMismatchError("LoRAs apply to the DiT, which --components leaves out")
    jobs = []
    for name in [*dits, *(n for n in found.extras if n in selected)]:
        is_dit = name in found.components
        comp = found.components[name] if is_dit else found.extras[name]
        kind = KINDS["wan_dit" if is_dit else KIND_OF_EXTRA[name]]
        source, lay, cfg = resolve_component(comp, layout, config) if is_dit else kind.resolve(comp)
        try:
            plan = kind.plan(source.keys(), cfg, lay)
        except KeyMismatchError as err:
            raise KeyMismatchError(f"{comp.path}: {err.args[0]}") from None
        job = _Job(name, kind, comp.path, source, lay, cfg, plan, _np_dtype(vae_dtype if name == "vae" else dtype), [])
        check_shapes(kind, source, plan, cfg, lay, comp.path)
        if name in loras:
            job.loras.append(load_lora(loras[name], cfg, lora_scale))
        jobs.append(job)
    return jobs, found, selected


def _converted_tensors(job: _Job, bar):
    """Yield (storage path, array) for every source tensor in plan order: read, LoRA-merged, transformed, cast."""
    for rule, names in job.plan:
        stacked = job.kind.stacked(rule)
        for i, name in enumerate(names):
            real = real_name(job.source, name)
            x = job.source.read(real)
            layer = i if stacked else None
            for lora in job.loras:
                delta = lora.delta(rule.target, layer)
                if delta is not None:
                    x = x.astype(np.float32) + delta
            value = np.ascontiguousarray(job.kind.forward(rule, x), dtype=job.dtype)
            del x
            bar.advance(job.source.infos[real].nbytes)
            yield checkpoint.storage_path(rule.target, layer), value


# Each Orbax partial save costs a little more than the previous one (it merges with what is on disk), so a
# component is written in at most about this many batches; larger models get larger batches.
MAX_BATCHES = 128


def _write_component(job: _Job, comp_dir: str, bar, batch_bytes: int) -> None:
    """Append the tensors to the Orbax checkpoint in batches of about `batch_bytes` (raised so that there are
    at most ~`MAX_BATCHES` batches), then commit it."""
    output_bytes = job.dtype.itemsize * sum(math.prod(info.shape) for info in job.source.infos.values())
    batch_bytes = max(batch_bytes, output_bytes // MAX_BATCHES)
    pending: dict = {}
    size = 0
    for path, value in _converted_tensors(job, bar):
        _set_path(pending, path, value)
        size += value.nbytes
        del value
        if size >= batch_bytes:
            checkpoint.save_params_partial(comp_dir, pending)
            pending, size = {}, 0
            release_freed_memory()
    if pending:
        checkpoint.save_params_partial(comp_dir, pending)
    del pending
    checkpoint.finalize(comp_dir)
    release_freed_memory()


def _set_path(tree: dict, path: tuple[str, ...], value) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise, inflating RSS between batches)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _copy_tokenizer(folder: str, dest: str) -> list[str]:
    """Copy the tokenizer's files (not sub-folders) into `dest`; returns their names."""
    from cos_jax.wan.text import TOKENIZER_FILE

    files = sorted(f for f in os.listdir(folder) if os.path.isfile(os.path.join(folder, f)))
    if TOKENIZER_FILE not in files:
        raise FileNotFoundError(f"{folder}: no {TOKENIZER_FILE} (found {files}); cos-jax reads the fast tokenizer file")
    os.makedirs(dest)
    for f in files:
        shutil.copy2(os.path.join(folder, f), os.path.join(dest, f))
    return files


def convert_checkpoint(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    lora: str | None = None,
    lora_high: str | None = None,
    lora_low: str | None = None,
    lora_scale: float = 1.0,
    dtype: str = "bf16",
    vae_dtype: str = "fp32",
    components: str | Sequence[str] | None = None,
    layout: Layout | None = None,
    config: DiTConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
    batch_bytes: int = 64 << 20,
    expect: str | os.PathLike | None = None,
) -> dict:
    """Convert `src` (any supported layout) to a cos-jax checkpoint folder `out`; returns the manifest.

    `components` picks from "dit", "vae", "text" (umT5 + tokenizer); default: all found. `dtype` is the
    stored dtype of the DiT(s) and the text encoder, `vae_dtype` the VAE's (fp32, as the official code runs
    it). `layout` / `config` override the DiT's. Converted tensors are appended to each Orbax checkpoint in
    batches of about `batch_bytes` (at least 1/`MAX_BATCHES` of the component), so peak memory is a small
    multiple of max(batch, largest tensor). `expect` names an expected manifest (see `convert.expect`) that
    the plan must match before anything is written."""
    src, out = os.fspath(src), os.path.abspath(os.fspath(out))
    for d in (dtype, vae_dtype):
        if d not in checkpoint.DTYPES:
            raise ValueError(f"dtype {d!r}; choose bf16 or fp32")
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out} exists; remove it or pass overwrite=True (--overwrite)")
    jobs, found, selected = plan_conversion(
        src, lora=lora, lora_high=lora_high, lora_low=lora_low, lora_scale=lora_scale, layout=layout, config=config,
        components=components, dtype=dtype, vae_dtype=vae_dtype,
    )  # fmt: skip
    if expect is not None:
        expected = read_expected(expect)
        summaries = {j.name: component_summary(j) for j in jobs}
        if "tokenizer" in selected:
            summaries["tokenizer"] = {"kind": "tokenizer"}
        check_expected(summaries, _boundary(found, jobs)[0], expected, src)
    _remove_stale_partials(out)
    tmp = f"{out}.incomplete-{os.getpid()}"
    os.makedirs(tmp)
    start = time.perf_counter()
    total = sum(j.bytes for j in jobs)
    try:
        with _Progress(total, sum(len(j.source.infos) for j in jobs), progress) as bar:
            for job in jobs:
                _write_component(job, os.path.join(tmp, job.name), bar, batch_bytes)
        tokenizer = None
        if "tokenizer" in selected:
            tokenizer = (found.tokenizer, _copy_tokenizer(found.tokenizer, os.path.join(tmp, "tokenizer")))
        seconds = time.perf_counter() - start
        manifest = _manifest(src, found, jobs, tokenizer, checkpoint.DTYPES[dtype], total, seconds)
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


def _np_dtype(name: str) -> np.dtype:
    if checkpoint.DTYPES.get(name) == "float32":
        return np.dtype(np.float32)
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def json_dump(obj, f) -> None:
    import json

    json.dump(obj, f, indent=2)
    f.write("\n")


def _boundary(found: CheckpointSet, jobs: list[_Job]) -> tuple[float | None, str | None]:
    """The expert boundary and where it came from: model_index.json, else the official default."""
    if found.boundary_ratio is not None:
        return found.boundary_ratio, "model_index.json"
    dits = [j for j in jobs if j.kind.name == "wan_dit"]
    boundary = DEFAULT_BOUNDARY.get(dits[0].config.model_type) if len(dits) == 2 else None
    return boundary, "official default for the model type" if boundary is not None else None


def _manifest(src: str, found, jobs: list[_Job], tokenizer, dtype: str, total: int, seconds: float) -> dict:
    boundary, boundary_origin = _boundary(found, jobs)
    from cos_jax import __version__

    relative = lambda f: os.path.relpath(f, src) if os.path.isdir(src) else os.path.basename(f)
    components = {}
    for j in jobs:
        summary = component_summary(j)
        components[j.name] = {
            "kind": j.kind.name,
            "path": j.name,
            "layout": j.layout,
            "config": j.kind.config_to_dict(j.config),
            "preset": summary["preset"],
            "dtype": str(np.dtype(j.dtype)),
            "source_files": [relative(f) for f in j.source.files],
            "tensors": summary["tensors"],
            "parameters": summary["parameters"],
            **({"loras": [lora.summary() for lora in j.loras]} if j.kind.name == "wan_dit" else {}),
        }
    if tokenizer is not None:
        folder, files = tokenizer
        components["tokenizer"] = {
            "kind": "tokenizer",
            "path": "tokenizer",
            "source_files": [relative(os.path.join(folder, f)) for f in files],
        }
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
        "components": components,
    }
