"""The denoising scan: one `lax.scan` per expert phase, CFG over a batch of worlds, x̂0 and captures.

Per step s (global index, both phases): plan merge and noise on x_s → DiT on [cond worlds | uncond worlds] with
the block hook of the plan → v = v_u + g·(v_c − v_u) → x̂0 = x_s − σ_s·v → solver update → clean-frame
overwrite (TI2V) → x̂0 and captures written to their slots. Two-expert models run the high-noise expert
for steps [0, switch) and the low-noise expert for [switch, N): two consecutive scans, a static split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cos_jax.probes.plan import Plan
from cos_jax.probes.transforms import empty_layer_buffer, layer_plan, make_block_hook, merge_latent, perturb_latent
from cos_jax.sampling.schedules import SamplingConfig
from cos_jax.sampling.solvers import get_solver
from cos_jax.wan.dit import WanDiT

F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class Conditions:
    """What every world is conditioned on. Leading axes are 1 (shared) or W (per world).

    context / negative: text-encoder outputs [1|W, T, text_dim] for the CFG branches; y: I2V channels
    [1|W, F, H, W, Cy] ([mask | first-frame latent]); clean_latent + clean_frames: TI2V image
    conditioning — latent frames where `clean_frames` [F] is 0 are held at `clean_latent` and their
    tokens see timestep 0.
    """

    context: jax.Array
    negative: jax.Array
    y: jax.Array | None = None
    clean_latent: jax.Array | None = None
    clean_frames: jax.Array | None = None


jax.tree_util.register_dataclass(
    Conditions, data_fields=["context", "negative", "y", "clean_latent", "clean_frames"], meta_fields=[]
)


@dataclasses.dataclass(frozen=True)
class KeepX0:
    """Which steps' x̂0 to return — a slot per step (-1 = drop; data) — and, static: the slot count, the
    dtype, a spatial stride (x̂0[:, :, ::stride, ::stride] is kept), and whether the latent x_s the DiT saw
    at those steps (after the plan's noise) is kept too, reduced the same way. States: the whole state at
    the start of the steps with a `state_slot` (`StartState`, unreduced: a run can start from it)."""

    step_slot: jax.Array
    state_slot: jax.Array
    num_slots: int
    num_state_slots: int = 0
    dtype: str = "float32"
    stride: int = 1
    latents: bool = False

    def reduce(self, x0: jax.Array) -> jax.Array:
        return x0[:, :, :: self.stride, :: self.stride].astype(self.dtype)


jax.tree_util.register_dataclass(
    KeepX0,
    data_fields=["step_slot", "state_slot"],
    meta_fields=["num_slots", "num_state_slots", "dtype", "stride", "latents"],
)


@dataclasses.dataclass(frozen=True)
class StartState:
    """A trajectory's state at the start of step `step` (before the plan acts there): the latent x, the
    solver's state and the previous step's x̂0. A run given one skips the steps before `step` (a traced
    value: one program for every start step) and goes on as the run it was kept from would have, its
    plan noise key advanced by the skipped steps."""

    step: jax.Array
    x: jax.Array
    solver: Any
    x0_prev: jax.Array

    def take(self, slot: int) -> StartState:
        """One state of states stacked over kept slots (a run's `states`)."""
        return jax.tree.map(lambda a: a[slot], self)


jax.tree_util.register_dataclass(StartState, data_fields=["step", "x", "solver", "x0_prev"], meta_fields=[])


def keep_x0(
    num_steps: int,
    steps=None,
    dtype: str = "float32",
    stride: int = 1,
    latents: bool = False,
    states: Sequence[int] = (),
) -> KeepX0:
    """Keep x̂0 at `steps` (None = every step), cast to `dtype`, every `stride`-th latent row and column;
    with `latents`, also the latent x_s the DiT saw at those steps; the `StartState` of the steps `states`.
    A step listed twice is kept once (slots in the order of first mention)."""
    steps = list(dict.fromkeys(range(num_steps) if steps is None else steps))
    states = list(dict.fromkeys(states))
    for name, chosen in (("keep", steps), ("state", states)):
        if any(not 0 <= s < num_steps for s in chosen):
            raise ValueError(f"{name} steps {chosen} must lie in [0, {num_steps})")
    if stride < 1:
        raise ValueError(f"x̂0 stride must be >= 1, got {stride}")
    return KeepX0(_slots(num_steps, steps), _slots(num_steps, states), len(steps), len(states), dtype, stride, latents)


def _slots(num_steps: int, steps: list[int]) -> jax.Array:
    """[num_steps] int32: the slot of each chosen step, -1 elsewhere."""
    slot = np.full(num_steps, -1, np.int32)
    slot[steps] = np.arange(len(steps))
    return jnp.asarray(slot)


def _per_world(a: jax.Array, worlds: int) -> jax.Array:
    return jnp.broadcast_to(a, (worlds, *a.shape[1:])) if a.shape[0] == 1 else a


def _write(buffer: jax.Array, slot: jax.Array, value: jax.Array) -> jax.Array:
    """Write value at `slot`, or at the trailing discard slot when slot < 0."""
    slot = jnp.where(slot >= 0, slot, buffer.shape[0] - 1)
    return jax.lax.dynamic_update_index_in_dim(buffer, value.astype(buffer.dtype), slot, 0)


def run_trajectory(
    experts: tuple[WanDiT, ...],
    cond: Conditions,
    noise: jax.Array,
    plan: Plan,
    key: jax.Array,
    keep: KeepX0,
    *,
    config: SamplingConfig,
    policy: str = "fp32",
    attention_backend: str = "auto",
    on_step: Callable[[jax.Array], None] | None = None,
    start: StartState | None = None,
) -> dict[str, Any]:
    """Sample from initial noise [W, F, H, W, C]; pure and jit-able (config, policy, backend static).

    `on_step(i)`, if given, is called on the host once step i's result is computed (progress bars, step
    timing); it does not change the result. `start` resumes from a kept `StartState` instead of the noise:
    the steps before `start.step` are skipped (their x̂0, captures and states are not written).

    Returns {"latent", "x0" [K, W, …], "xs" [K, W, …] (the DiT's input latents; with `keep.latents`, else
    None), "states" (a `StartState` with a leading axis over the state slots; None if there are none),
    "captures" [steps, layers, branches, W, …] or None, "finite" [S, W]: whether x̂0 of each step and world
    is free of NaN/inf}.
    """
    schedule = config.schedule()
    sigmas = jnp.asarray(schedule.sigmas)
    timesteps = jnp.asarray(schedule.timesteps)
    worlds = noise.shape[0]
    model_cfg = experts[0].config
    pt, ph, pw = model_cfg.patch_size
    f, h, w = noise.shape[1] // pt, noise.shape[2] // ph, noise.shape[3] // pw
    tokens = f * h * w
    init_solver, solver_step = get_solver(config.solver)
    hook = make_block_hook(plan, worlds)

    ctx = jnp.concatenate([_per_world(cond.context, worlds), _per_world(cond.negative, worlds)])
    y = None if cond.y is None else jnp.concatenate([_per_world(cond.y, worlds)] * 2)
    clean = cond.clean_latent is not None
    if clean:
        keep_mask = cond.clean_frames.astype(F32)[None, :, None, None, None]
        clean_latent = _per_world(cond.clean_latent, worlds).astype(F32)
        token_scale = jnp.repeat(cond.clean_frames.astype(F32), tokens // f)[None]  # [1, L]
        x = (1 - keep_mask) * clean_latent + keep_mask * noise.astype(F32)
    else:
        x = noise.astype(F32)
    solver_state, x0_prev = init_solver(x), jnp.zeros_like(x)
    if start is not None:  # the carry at the start of `start.step`; the key as that step found it
        x, solver_state, x0_prev = start.x.astype(F32), start.solver, start.x0_prev.astype(F32)
        key = jax.lax.fori_loop(0, start.step, lambda _, k: jax.random.split(k)[0], key)

    x0_buffer = jnp.zeros((keep.num_slots + 1, *keep.reduce(x).shape), keep.dtype)
    state_buffer = None
    if keep.num_state_slots:
        here = StartState(jnp.zeros((), jnp.int32), x, solver_state, x0_prev)
        state_buffer = jax.tree.map(lambda a: jnp.zeros((keep.num_state_slots + 1, *a.shape), a.dtype), here)
    xs_buffer = jnp.zeros_like(x0_buffer) if keep.latents else None
    capture = plan.capture
    cap_buffer = None
    if capture is not None:
        per_step = empty_layer_buffer(capture, worlds, tokens, model_cfg.dim)
        cap_buffer = jnp.zeros((capture.num_steps + 1, *per_step.shape), per_step.dtype)

    def step(model, guidance, carry, i):
        x, solver_state, x0_prev, key, x0_buffer, xs_buffer, cap_buffer, state_buffer = carry
        if keep.num_state_slots:
            here = StartState(i.astype(jnp.int32), x, solver_state, x0_prev)
            state_buffer = jax.tree.map(lambda b, v: _write(b, keep.state_slot[i], v), state_buffer, here)
        sigma = sigmas[i]
        key, noise_key = jax.random.split(key)
        if plan.merge is not None:
            x = merge_latent(plan.merge, i, x, x0_prev, sigma)
        if plan.noise is not None:
            x = perturb_latent(plan.noise, i, x, x0_prev, sigma, noise_key)
        t = jnp.full((2 * worlds,), timesteps[i])
        if clean:
            t = t[:, None] * token_scale
        state = None if capture is None else empty_layer_buffer(capture, worlds, tokens, model_cfg.dim)
        v_both, state = model.forward_hooked(
            jnp.concatenate([x, x]), t, ctx, y, hook=hook, plan=layer_plan(plan, i), state=state,
            policy=policy, attention_backend=attention_backend,
        )  # fmt: skip
        v_cond, v_uncond = v_both[:worlds], v_both[worlds:]
        v = v_uncond + guidance * (v_cond - v_uncond)
        x0 = x - sigma * v
        x_next, solver_state = solver_step(solver_state, x, v, i, sigmas)
        if clean:
            x_next = (1 - keep_mask) * clean_latent + keep_mask * x_next
        x0_buffer = _write(x0_buffer, keep.step_slot[i], keep.reduce(x0))
        if keep.latents:
            xs_buffer = _write(xs_buffer, keep.step_slot[i], keep.reduce(x))
        if capture is not None:
            cap_buffer = _write(cap_buffer, capture.step_slot[i], state)
        if on_step is not None:  # the barrier holds the call back until the step's result exists
            jax.debug.callback(on_step, jax.lax.optimization_barrier((i, x_next))[0])
        finite = jnp.isfinite(x0.reshape(worlds, -1)).all(axis=1)
        return (x_next, solver_state, x0, key, x0_buffer, xs_buffer, cap_buffer, state_buffer), finite

    def step_from_start(model, guidance, carry, i):
        """`step`, or nothing for the steps before the start step."""
        skip = lambda carry, i: (carry, jnp.ones((worlds,), bool))
        return jax.lax.cond(i >= start.step, partial(step, model, guidance), skip, carry, i)

    carry = (x, solver_state, x0_prev, key, x0_buffer, xs_buffer, cap_buffer, state_buffer)
    body = step if start is None else step_from_start
    switch = config.switch_step() if len(experts) == 2 else config.steps
    phases = [(experts[0], config.guidance_high, 0, switch)]
    if len(experts) == 2:
        phases.append((experts[1], config.guidance_low, switch, config.steps))
    finite = []
    for model, guidance, first, stop in phases:
        if stop > first:
            carry, finite_steps = jax.lax.scan(partial(body, model, guidance), carry, jnp.arange(first, stop))
            finite.append(finite_steps)
    x, _, _, _, x0_buffer, xs_buffer, cap_buffer, state_buffer = carry
    captures = None
    if capture is not None:
        captures = cap_buffer[:-1, :-1]
    xs = None if xs_buffer is None else xs_buffer[:-1]
    return {
        "latent": x,
        "x0": x0_buffer[:-1],
        "xs": xs,
        "states": None if state_buffer is None else jax.tree.map(lambda b: b[:-1], state_buffer),
        "captures": captures,
        "finite": jnp.concatenate(finite) if finite else jnp.ones((0, worlds), bool),
    }
