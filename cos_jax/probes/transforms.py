"""The pure transforms a `Plan` stands for: latent merge and noise before the DiT call, and the block hook
(inject → mix → capture) that runs after every transformer block."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from cos_jax.probes.plan import Capture, LatentMerge, LatentNoise, Plan

F32 = jnp.float32


def perturb_latent(
    noise: LatentNoise, step: jax.Array, x: jax.Array, x0_prev: jax.Array, sigma: jax.Array, key: jax.Array
) -> jax.Array:
    """Apply the plan's latent noise at `step` to x [W, F, H, W, C] (see `cos_jax.probes.plan`)."""
    eps = jax.random.normal(key, x.shape, x.dtype)
    alpha = noise.alpha.astype(x.dtype)
    if noise.mode == "replace":
        changed = (1 - alpha) * x + alpha * eps
    elif noise.mode == "add":
        changed = x + alpha * eps
    else:  # renoise: keep the clean estimate, replace (part of) the noise it implies
        implied = (x - (1 - sigma) * x0_prev) / sigma
        changed = (1 - sigma) * x0_prev + sigma * (jnp.sqrt(1 - alpha**2) * implied + alpha * eps)
    cells = noise.mask[step][None, :, None, None, None] * noise.worlds[:, None, None, None, None]
    return jnp.where(cells > 0, changed, x)


def merge_latent(merge: LatentMerge, step: jax.Array, x: jax.Array, x0_prev: jax.Array, sigma: jax.Array) -> jax.Array:
    """Apply the plan's latent merge at `step` to x [W, F, H, W, C] (see `cos_jax.probes.plan`)."""
    hi = jax.lax.Precision.HIGHEST
    implied = (x - (1 - sigma) * x0_prev) / sigma
    clean = jnp.einsum("vw,w...->v...", merge.matrix, x0_prev, precision=hi)
    noise = implied
    if merge.mode == "latent":
        averaged = jnp.einsum("vw,w...->v...", merge.matrix, implied, precision=hi)
        axes = tuple(range(1, x.ndim))
        target = merge.matrix @ jnp.mean(jnp.square(implied), axis=axes)  # the noises' mean square, per world
        scale = jnp.sqrt(target / jnp.maximum(jnp.mean(jnp.square(averaged), axis=axes), 1e-20))
        noise = averaged * scale.reshape(-1, *(1,) * len(axes))
    merged = (1 - sigma) * clean + sigma * noise
    return jnp.where(merge.steps[step] > 0, merged.astype(x.dtype), x)


def capture_shape(capture: Capture, num_worlds: int, tokens: int, dim: int) -> tuple[int, ...]:
    """Shape of one reduced capture (one step, one layer)."""
    branches = 2 if capture.branches == "both" else 1
    per_reducer = {
        "full": (tokens, dim),
        "token_norm": (tokens,),
        "mean": (dim,),
        "subsample": (-(-tokens // capture.stride), dim),
    }
    return (branches, num_worlds, *per_reducer[capture.reducer])


def _reduce(capture: Capture, h: jax.Array) -> jax.Array:
    """h [2, W, L, D] -> the capture's reduced tensor."""
    if capture.branches == "cond":
        h = h[:1]
    elif capture.branches == "uncond":
        h = h[1:]
    if capture.reducer == "token_norm":
        h = jnp.sqrt(jnp.sum(jnp.square(h), axis=-1))
    elif capture.reducer == "mean":
        h = jnp.mean(h, axis=-2)
    elif capture.reducer == "subsample":
        h = h[:, :, :: capture.stride]
    return h.astype(capture.dtype)


def empty_layer_buffer(capture: Capture, num_worlds: int, tokens: int, dim: int) -> jax.Array:
    """Per-step capture buffer: one slot per captured layer plus a discard slot at the end."""
    return jnp.zeros((capture.num_layers + 1, *capture_shape(capture, num_worlds, tokens, dim)), capture.dtype)


def layer_plan(plan: Plan, step: jax.Array) -> dict:
    """The per-layer arrays of this step, scanned over by the DiT block scan."""
    out = {}
    if plan.mix is not None:
        out["mix"] = plan.mix.where[step]
    if plan.inject is not None:
        out["inject"] = plan.inject.index[step]
    if plan.capture is not None:
        out["capture"] = plan.capture.layer_slot
    return out


def make_block_hook(plan: Plan, num_worlds: int):
    """The hook `(hidden, layer_plan, layer, buffer, block_input) -> (hidden, buffer)` for this plan (None if it
    does nothing)."""
    if plan.mix is None and plan.inject is None and plan.capture is None:
        return None

    def hook(hidden, sl, layer, buffer, block_input):
        b, length, dim = hidden.shape
        h = hidden.reshape(2, num_worlds, length, dim)
        if plan.inject is not None:
            k = sl["inject"]
            source = plan.inject.source[jnp.maximum(k, 0)].astype(h.dtype)
            cells = (k >= 0) * plan.inject.branches[:, None] * plan.inject.worlds[None, :]
            h = jnp.where(cells[:, :, None, None] > 0, source, h)
        if plan.mix is not None:
            mix = partial(jnp.einsum, "vw,bwld->bvld", plan.mix.matrix, precision=jax.lax.Precision.HIGHEST)
            if plan.mix.part == "stream":
                mixed = mix(h)
            else:  # h + (M·Δ − Δ): exact where the worlds' updates agree
                update = h - block_input.reshape(h.shape)
                mixed = h + (mix(update) - update)
            cells = sl["mix"] * plan.mix.branches
            h = jnp.where(cells[:, None, None, None] > 0, mixed, h)
        if plan.capture is not None:
            slot = jnp.where(sl["capture"] >= 0, sl["capture"], plan.capture.num_layers)
            buffer = jax.lax.dynamic_update_index_in_dim(buffer, _reduce(plan.capture, h), slot, 0)
        return h.reshape(b, length, dim), buffer

    return hook
