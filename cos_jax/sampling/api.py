"""`sample`: the one entry point for running a denoising trajectory."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from cos_jax.parallel import shard_world_call
from cos_jax.probes.plan import Plan
from cos_jax.sampling.loop import Conditions, StartState, keep_x0, run_trajectory
from cos_jax.sampling.schedules import SamplingConfig, sampling_preset
from cos_jax.sampling.trajectory import Trajectory
from cos_jax.wan.dit import WanDiT


@partial(jax.jit, static_argnames=("config", "policy", "attention_backend", "on_step"))
def _run_jitted(experts, cond, noise, plan, key, keep, start=None, *, config, policy, attention_backend, on_step):
    return run_trajectory(experts, cond, noise, plan, key, keep, config=config, policy=policy,
                          attention_backend=attention_backend, on_step=on_step, start=start)  # fmt: skip


# The progress bar of the running `sample` call; `_tick` is one static function, so showing progress
# never changes the compiled program's cache key.
_progress: dict = {}


def _tick(step) -> None:
    if _progress.get("bar") is not None and int(step) not in _progress["done"]:
        _progress["done"][int(step)] = time.perf_counter() - _progress["start"]
        _progress["bar"].update(1)


def initial_noise(seeds: Sequence[int], latent_shape: tuple[int, ...]) -> jax.Array:
    """Standard normal x_T per world, from `jax.random.key(seed)` ([W, *latent_shape])."""
    return jnp.stack([jax.random.normal(jax.random.key(s), latent_shape, jnp.float32) for s in seeds])


def sample(
    model: WanDiT | tuple[WanDiT, WanDiT],
    conditions: Conditions,
    config: SamplingConfig | str,
    latent_shape: tuple[int, int, int, int] | None = None,
    *,
    seeds: Sequence[int] = (0,),
    noise: jax.Array | None = None,
    plan: Plan | None = None,
    plan_seed: int = 0,
    keep_steps: Sequence[int] | None = None,
    x0_dtype: str = "float32",
    x0_stride: int = 1,
    keep_latents: bool = False,
    keep_states: bool | Sequence[int] = False,
    start: StartState | None = None,
    policy: str = "fp32",
    attention_backend: str = "auto",
    progress: bool = False,
    mesh: jax.sharding.Mesh | None = None,
) -> Trajectory:
    """Run one trajectory per seed (the "worlds") through one jitted scan and return a `Trajectory`.

    `model` is one DiT or a (high-noise, low-noise) pair; `config` a `SamplingConfig` or a preset name
    (`official-t2v-a14b`, `official-i2v-a14b`, `official-ti2v-5b`, `paper`). The initial noise comes
    from `seeds` and `latent_shape` (F, H, W, C), or is given as `noise` [W, F, H, W, C]. `plan_seed` seeds
    the noise a plan injects. `keep_steps` selects the steps whose x̂0 is returned (default: all).
    `x0_dtype` / `x0_stride` cast and spatially subsample the kept x̂0; `keep_latents` also keeps the
    latent x_s the DiT saw at those steps (after the plan's noise); `keep_states` the `StartState`s of
    those steps (True) or of the steps it lists (`Trajectory.state_at`), from which a later call given
    `start=` goes on: with the same plan seed and a plan that acts only from that step on, it gives the run
    from the noise without computing the steps before. `progress` shows a progress bar and records in
    `meta["step_done_s"]` when each step finished (seconds from the call).
    `mesh` spreads the call over devices (all processes' under `jax.distributed`): worlds over the batch
    axes, the sequence over `context`, the experts' weights by the mesh rules (`parallel.shard_world_call`);
    every process passes the same arguments and gets the whole trajectory back.
    """
    config = sampling_preset(config) if isinstance(config, str) else config
    experts = tuple(model) if isinstance(model, tuple | list) else (model,)
    if len(experts) not in (1, 2):
        raise ValueError(f"expected one DiT or a (high, low) pair, got {len(experts)} models")
    if len(experts) == 2 and config.boundary is None:
        raise ValueError("two experts need a sampling config with a boundary (e.g. 'official-t2v-a14b' or 'paper')")
    given_noise = noise is not None
    if noise is None:
        if latent_shape is None:
            raise ValueError("pass latent_shape=(F, H, W, C) with seeds, or the initial noise itself")
        noise = initial_noise(seeds, tuple(latent_shape))
    if keep_states is True:
        keep_states = range(config.steps) if keep_steps is None else keep_steps
    keep = keep_x0(config.steps, keep_steps, x0_dtype, x0_stride, keep_latents, keep_states or ())
    if start is not None and not 0 <= int(start.step) < config.steps:
        raise ValueError(f"start step {int(start.step)} must lie in [0, {config.steps})")
    if start is not None and tuple(start.x.shape) != tuple(noise.shape):
        raise ValueError(f"the start state holds latents {tuple(start.x.shape)}, this call {tuple(noise.shape)}")
    plan = plan or Plan()
    skipped = 0 if start is None else int(start.step)
    _progress.update(bar=tqdm(total=config.steps, initial=skipped, desc="denoising", unit="step") if progress
                     else None, done={}, start=time.perf_counter())  # fmt: skip
    try:
        run = partial(_run_jitted, config=config, policy=policy, attention_backend=attention_backend,
                      on_step=_tick if progress else None)  # fmt: skip
        args = (experts, conditions, noise, plan, jax.random.key(plan_seed), keep, start)
        out = run(*args) if mesh is None else shard_world_call(run, mesh, *args)
        jax.block_until_ready(out)
    finally:
        if _progress["bar"] is not None:
            _progress.pop("bar").close()
    schedule = config.schedule()
    capture = plan.capture
    meta = {
        "sampling": dataclasses.asdict(config),
        "seeds": None if given_noise else list(seeds),
        "policy": policy,
        "model": dataclasses.asdict(experts[0].config),
        "switch_step": config.switch_step() if len(experts) == 2 else None,
    }
    if progress:  # seconds from the call to the end of each step (step 0's includes compiling)
        meta["step_done_s"] = [round(_progress["done"][i], 4) for i in sorted(_progress["done"])]
    return Trajectory(
        latent=np.asarray(out["latent"]),
        x0=np.asarray(out["x0"]),
        x0_steps=_slots_to_indices(keep.step_slot),
        sigmas=schedule.sigmas,
        timesteps=schedule.timesteps,
        captures=None if capture is None else np.asarray(out["captures"]),
        xs=None if out["xs"] is None else np.asarray(out["xs"]),
        states=None if out["states"] is None else jax.tree.map(np.asarray, out["states"]),
        state_steps=None if out["states"] is None else _slots_to_indices(keep.state_slot),
        finite=np.asarray(out["finite"]),
        capture_steps=None if capture is None else _slots_to_indices(capture.step_slot),
        capture_layers=None if capture is None else _slots_to_indices(capture.layer_slot),
        meta=meta,
    )


def _slots_to_indices(slots) -> np.ndarray:
    """[S] slot array -> the step (or layer) index held by each slot, in slot order."""
    slots = np.asarray(slots)
    used = np.flatnonzero(slots >= 0)
    return used[np.argsort(slots[used])]
