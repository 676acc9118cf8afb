"""Train one expert's LoRA of a Wan2.2 pipeline folder on VBVR sample folders, end to end.

`train_pipeline_lora` encodes the samples once through the folder's VAE and umT5 (cached in
`out/latents.npz`), places the frozen expert and the LoRA on a mesh (FSDP by default: the base kernels and
each LoRA factor split like their kernels), and runs `latent_lora_step` on the expert's σ range until the
step count or the time budget, resumable from `out/state`. It writes `out/lora.safetensors` in the
DiffSynth naming that `cos-jax convert --lora-high/--lora-low` merges, `out/log.jsonl` and
`out/summary.json`. `cos-jax train-lora` is its command line.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from cos_jax.arrays_io import atomic_write, load_arrays
from cos_jax.errors import UsageError
from cos_jax.pipelines.components import Components, load_components
from cos_jax.train.lora import (
    LoraTrainConfig,
    init_lora_state,
    latent_lora_step,
    lora_shardings,
    read_lora,
    save_lora,
    u_range,
)

LATENTS = "latents.npz"


def expert_index(components: Components, expert: str) -> int:
    """Which of the pipeline's experts `expert` names: `high`/`low` of a two-expert folder, `single` of a
    one-expert one; anything else is a UsageError naming the choices."""
    names = ("high", "low") if len(components.experts) == 2 else ("single",)
    if expert not in names:
        raise UsageError(f"{components.source} has expert(s) {', '.join(names)}, not {expert!r}; pass --expert "
                         f"{names[0]}")  # fmt: skip
    return names.index(expert)


def expert_sigma_range(components: Components, expert: str) -> tuple[float, float]:
    """The σ range an expert denoises: above the folder's boundary for `high`, below it for `low`, all of
    [0, 1] for a single expert (σ = t / 1000, so the boundary ratio is the boundary σ)."""
    expert_index(components, expert)
    if expert == "single":
        return 0.0, 1.0
    if components.boundary_ratio is None:
        raise UsageError(f"{components.source} names no expert boundary; pass --sigma LO,HI for the {expert} expert")
    boundary = float(components.boundary_ratio)
    return (boundary, 1.0) if expert == "high" else (0.0, boundary)


def cached_latents(components: Components, samples: str | os.PathLike, out: Path, frames: int | None) -> dict:
    """The latent training set of `samples`, encoded once and kept in `out/latents.npz` (written atomically);
    a cache made from other samples or another frame count is a UsageError rather than silently reused."""
    from cos_jax.train.vbvr_data import encode_samples, sample_folders

    key = {"samples": [str(p.relative_to(samples)) for p in sample_folders(samples)], "frames": frames,
           "pipeline": Path(components.source).name}  # fmt: skip
    path = out / LATENTS
    if path.exists():
        with load_arrays(path) as f:
            cached = {k: np.asarray(f[k]) for k in f.files}
        if json.loads(str(cached.pop("key_json"))) != key:
            raise UsageError(f"{path} was encoded from other samples, frames or pipeline; use another --out")
        return cached
    data = encode_samples(components, samples, frames)
    atomic_write(path, lambda tmp: np.savez(tmp, key_json=np.asarray(json.dumps(key)), **data))
    return data


def train_pipeline_lora(
    pipeline: str | os.PathLike,
    samples: str | os.PathLike,
    out: str | os.PathLike,
    *,
    expert: str,
    cfg: LoraTrainConfig,
    sigma_range: tuple[float, float] | None = None,
    frames: int | None = None,
    mesh: str = "",
    init: str | os.PathLike | None = None,
    param_dtype=jnp.float32,
    time_budget_s: float | None = None,
    checkpoint_every: int = 100,
    log_every: int = 10,
) -> dict:
    """Train the LoRA of `expert` (`high`, `low` or `single`) of the pipeline folder on the sample folders
    under `samples`; `sigma_range` defaults to the expert's own (`expert_sigma_range`), `mesh` to every
    device on `fsdp` (`parallel.make_mesh` syntax, e.g. "data=2,fsdp=4"). Returns the run's summary."""
    from cos_jax.parallel import make_mesh, shard_model
    from cos_jax.train.run import run_steps

    out = Path(out)
    components = load_components(pipeline, param_dtype=param_dtype)
    index = expert_index(components, expert)
    cfg = dataclasses.replace(cfg, sigma_range=sigma_range or expert_sigma_range(components, expert))
    u_range(cfg.sigma_range, cfg.train.shift)  # bad settings fail before the samples are encoded
    cfg.lora.check()
    dit_config = components.dit_config
    init_lora = None if init is None else read_lora(init, dit_config, cfg.lora)
    data = cached_latents(components, samples, out, frames)
    expert_model, source = components.experts[index], Path(components.source).name
    del components  # the other expert, the VAE and umT5 are not needed past the encoding: free them
    device_mesh = make_mesh(mesh)
    with jax.set_mesh(device_mesh):
        graphdef, params = nnx.split(shard_model(expert_model, device_mesh), nnx.Param)
        del expert_model  # the unsharded copy
        dit = nnx.merge(graphdef, params)
        place = lambda lora: jax.device_put(lora, lora_shardings(dit, lora, device_mesh))
        state = init_lora_state(dit_config, cfg, init_lora, place=place)
        replicated = NamedSharding(device_mesh, PartitionSpec())
        # counters, key and the optimizer's scalars on every device, so a restored state lands the same way
        state = jax.tree.map(lambda x: x if isinstance(x.sharding, NamedSharding) else jax.device_put(x, replicated),
                             state)  # fmt: skip
        inputs = (params, jax.device_put(data, replicated))
    info = {"rank": str(cfg.lora.rank), "scale": str(cfg.lora.scale), "sigma_range": json.dumps(cfg.sigma_range),
            "targets": ",".join(cfg.lora.targets), "pipeline": source,
            "expert": expert}  # fmt: skip

    def save(state) -> None:
        save_lora(out / "lora.safetensors", state.lora, cfg.lora.scale, {**info, "step": str(int(state.step))})

    def step(state, params, data):
        return latent_lora_step(graphdef, params, cfg, state, data)

    tokens = dit_config.tokens(*data["x0"].shape[1:4])
    flops = 3.0 * dit_config.forward_flops(tokens, data["context"].shape[1])
    print(f"training the {expert} expert's LoRA (rank {cfg.lora.rank}, σ ∈ [{cfg.sigma_range[0]:g}, "
          f"{cfg.sigma_range[1]:g}]) on {data['x0'].shape[0]} samples, mesh {dict(device_mesh.shape)}")  # fmt: skip
    return run_steps(step, state, inputs, out, mesh=device_mesh, flops_per_sample=flops, cfg=cfg.train, save=save,
                     time_budget_s=time_budget_s, checkpoint_every=checkpoint_every, log_every=log_every)  # fmt: skip
