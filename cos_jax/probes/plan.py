"""Intervention plans: pytrees of arrays, so changing *where* they act never recompiles.

A plan acts on a batch of W "worlds" (seeds), each run with a conditional and an unconditional CFG
branch; the DiT batch is branch-major: [cond worlds…, uncond worlds…]. Its parts, applied in this
fixed order at every denoising step s:

0. `merge` — rebuild x_s from the worlds it averages over (`matrix`, rows summing to 1), at the steps of
   `steps`, with x̂0 the previous step's clean estimate and ε̂ = (x − (1−σ_s)·x̂0)/σ_s its noise:
     latent  x ← (1−σ_s)·M·x̂0 + σ_s·c·M·ε̂   c rescales each world's averaged noise back to the rms of
                                              the noises it averaged (so independent noises stay N(0, I))
     x0      x ← (1−σ_s)·M·x̂0 + σ_s·ε̂      the clean estimates are averaged, each world keeps its noise
1. `noise` — latent perturbation of x_s before the DiT call, at the (step, latent frame) cells of
   `mask`, in the worlds of `worlds`:
     replace  x ← (1−α)·x + α·ε                       (α = 1: the paper's x ← N(0, I))
     add      x ← x + α·ε
     renoise  x ← (1−σ_s)·x̂0 + σ_s·(√(1−α²)·ε̂ + α·ε)  with x̂0 the previous step's clean estimate and
              ε̂ = (x − (1−σ_s)·x̂0)/σ_s the noise it implies: the clean estimate is kept and the noise
              replaced (α = 1) or partly replaced; at step 0, x̂0 = 0.
2. after every block l (site `blocks.{l}.resid_post`), in this order:
   a. `inject` — replace the block output with a stored tensor where `index[s, l] >= 0`;
   b. `mix` — over the worlds axis where `where[s, l]` (swap = permutation, ensemble = average), either
      the whole residual stream, h ← M·h (`part="stream"`), or only the block's own update,
      h ← h_in + M·(h − h_in) with h_in the block's input (`part="update"`: each world keeps the stream it
      brought to the block and receives the other worlds' contribution of this one layer);
   c. `capture` — reduce and store the block output at the slots of `step_slot[s]` × `layer_slot[l]`.
Masks and slots are arrays; modes, reducers and slot counts are static. An all-zero plan is
bit-identical to no plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

NoiseMode = Literal["replace", "add", "renoise"]
MergeMode = Literal["latent", "x0"]
Reducer = Literal["full", "token_norm", "mean", "subsample"]
Branches = Literal["cond", "uncond", "both"]
MixPart = Literal["stream", "update"]
BRANCH_MASKS = {"cond": (1.0, 0.0), "uncond": (0.0, 1.0), "both": (1.0, 1.0)}


def _register(cls, meta: Sequence[str] = ()):
    fields = [f.name for f in dataclasses.fields(cls)]
    data = [f for f in fields if f not in meta]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=list(meta))


@dataclasses.dataclass(frozen=True)
class LatentNoise:
    mask: jax.Array  # [S, F] 1 where (step, latent frame) is perturbed
    worlds: jax.Array  # [W]
    alpha: jax.Array  # []
    mode: NoiseMode = "replace"


@dataclasses.dataclass(frozen=True)
class LatentMerge:
    matrix: jax.Array  # [W, W]: world v becomes sum_w M[v, w] * (its parts)_w
    steps: jax.Array  # [S] 1 where x_s is rebuilt before the DiT call
    mode: MergeMode = "latent"


@dataclasses.dataclass(frozen=True)
class Mix:
    matrix: jax.Array  # [W, W]: world v receives sum_w M[v, w] * h_w
    where: jax.Array  # [S, Lyr]
    branches: jax.Array  # [2] (cond, uncond)
    part: MixPart = "stream"


@dataclasses.dataclass(frozen=True)
class Inject:
    source: jax.Array  # [K, 2, W, L, D] stored block outputs
    index: jax.Array  # [S, Lyr] int32, -1 = keep, k = use source[k]
    branches: jax.Array  # [2]
    worlds: jax.Array  # [W]


@dataclasses.dataclass(frozen=True)
class Capture:
    step_slot: jax.Array  # [S] int32, -1 = not captured
    layer_slot: jax.Array  # [Lyr] int32, -1 = not captured
    num_steps: int = 1  # static: number of step slots
    num_layers: int = 1  # static: number of layer slots
    reducer: Reducer = "token_norm"
    branches: Branches = "cond"
    stride: int = 4  # token stride of the `subsample` reducer
    dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class Plan:
    noise: LatentNoise | None = None
    mix: Mix | None = None
    inject: Inject | None = None
    capture: Capture | None = None
    merge: LatentMerge | None = None


_register(LatentNoise, meta=("mode",))
_register(LatentMerge, meta=("mode",))
_register(Mix, meta=("part",))
_register(Inject)
_register(Capture, meta=("num_steps", "num_layers", "reducer", "branches", "stride", "dtype"))
_register(Plan)


def _one_hot(n: int, index: int | Sequence[int] | None) -> np.ndarray:
    """A 0/1 vector of length n with ones at `index` (None: all)."""
    out = np.zeros(n, np.float32)
    out[slice(None) if index is None else np.asarray(index, dtype=int)] = 1.0
    return out


def _check(name: str, values, bound: int):
    for v in np.atleast_1d(np.asarray(values)):
        if not 0 <= int(v) < bound:
            raise ValueError(f"{name} {int(v)} is out of range [0, {bound})")


def noise_plan(
    num_steps: int,
    num_frames: int,
    num_worlds: int,
    steps: int | Sequence[int] | None = None,
    frames: int | Sequence[int] | None = None,
    worlds: int | Sequence[int] | None = None,
    mode: NoiseMode = "replace",
    alpha: float = 1.0,
) -> LatentNoise:
    """Noise at the given steps × latent frames (None = all). `steps=s` alone is the paper's
    noise-at-step; `frames=f` alone its noise-at-frame."""
    if mode not in ("replace", "add", "renoise"):
        raise ValueError(f"unknown noise mode {mode!r}; choose 'replace', 'add' or 'renoise'")
    for name, v, n in (("step", steps, num_steps), ("frame", frames, num_frames), ("world", worlds, num_worlds)):
        if v is not None:
            _check(name, v, n)
    mask = np.outer(_one_hot(num_steps, steps), _one_hot(num_frames, frames))
    return LatentNoise(
        jnp.asarray(mask), jnp.asarray(_one_hot(num_worlds, worlds)), jnp.asarray(alpha, jnp.float32), mode
    )


def _step_layer_mask(num_steps, num_layers, steps, layers) -> jax.Array:
    for name, v, n in (("step", steps, num_steps), ("layer", layers, num_layers)):
        if v is not None:
            _check(name, v, n)
    return jnp.asarray(np.outer(_one_hot(num_steps, steps), _one_hot(num_layers, layers)))


def mix_plan(
    matrix, num_steps: int, num_layers: int, steps=None, layers=None, branches: Branches = "both",
    part: MixPart = "stream",
) -> Mix:  # fmt: skip
    """Mix block outputs (`part="stream"`) or the blocks' own updates (`"update"`) over worlds with `matrix`
    [W, W] at the given steps × layers (None = all)."""
    matrix = jnp.asarray(matrix, jnp.float32)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"mix matrix must be square [W, W], got shape {matrix.shape}")
    if part not in ("stream", "update"):
        raise ValueError(f"unknown mix part {part!r}; choose 'stream' or 'update'")
    where = _step_layer_mask(num_steps, num_layers, steps, layers)
    return Mix(matrix, where, jnp.asarray(BRANCH_MASKS[branches]), part)


def merge_plan(matrix, num_steps: int, steps: int | Sequence[int], mode: MergeMode = "latent") -> LatentMerge:
    """Rebuild x_s at `steps` from the worlds' averaged parts (see the module docstring); `matrix` [W, W]
    (e.g. `group_mean_matrix`) says which worlds each one averages over."""
    if mode not in ("latent", "x0"):
        raise ValueError(f"unknown merge mode {mode!r}; choose 'latent' or 'x0'")
    matrix = np.asarray(matrix, np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not np.allclose(matrix.sum(1), 1.0, atol=1e-5):
        raise ValueError(f"merge matrix must be square [W, W] with rows summing to 1, got shape {matrix.shape}")
    _check("step", steps, num_steps)
    return LatentMerge(jnp.asarray(matrix), jnp.asarray(_one_hot(num_steps, steps)), mode)


def group_mean_matrix(num_groups: int, group_size: int) -> np.ndarray:
    """Worlds in consecutive groups of `group_size` (one problem's seeds); each receives its group's mean."""
    return np.kron(np.eye(num_groups, dtype=np.float32), ensemble_matrix(group_size))


def swap_matrix(num_worlds: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Permutation exchanging each (i, j) pair of worlds."""
    perm = np.arange(num_worlds)
    for i, j in pairs:
        _check("world", [i, j], num_worlds)
        perm[i], perm[j] = perm[j], perm[i]
    return np.eye(num_worlds, dtype=np.float32)[perm]


def ensemble_matrix(num_worlds: int) -> np.ndarray:
    """Every world receives the uniform average over all worlds."""
    return np.full((num_worlds, num_worlds), 1.0 / num_worlds, np.float32)


def inject_plan(
    source, num_steps: int, num_layers: int, at: Sequence[tuple[int, int]], branches: Branches = "both", worlds=None
) -> Inject:
    """Replace block outputs at the (step, layer) pairs `at` with `source[k]` ([K, 2, W, L, D]) for the k-th pair."""
    source = jnp.asarray(source)
    if source.ndim != 5 or source.shape[1] != 2 or source.shape[0] != len(at):
        raise ValueError(f"inject source must be [len(at)={len(at)}, 2, W, L, D], got shape {source.shape}")
    index = np.full((num_steps, num_layers), -1, np.int32)
    for k, (s, layer) in enumerate(at):
        _check("step", s, num_steps)
        _check("layer", layer, num_layers)
        index[s, layer] = k
    return Inject(source, jnp.asarray(index), jnp.asarray(BRANCH_MASKS[branches]),
                  jnp.asarray(_one_hot(source.shape[2], worlds)))  # fmt: skip


def capture_plan(
    num_steps: int,
    num_layers: int,
    steps: Sequence[int],
    layers: Sequence[int],
    reducer: Reducer = "token_norm",
    branches: Branches = "cond",
    stride: int = 4,
    dtype: str = "float32",
) -> Capture:
    """Capture block outputs at steps × layers; memory is len(steps) × len(layers) reduced tensors."""
    if reducer not in ("full", "token_norm", "mean", "subsample"):
        raise ValueError(f"unknown reducer {reducer!r}; choose 'full', 'token_norm', 'mean' or 'subsample'")
    if branches not in BRANCH_MASKS:
        raise ValueError(f"unknown branches {branches!r}; choose one of {sorted(BRANCH_MASKS)}")
    _check("step", steps, num_steps)
    _check("layer", layers, num_layers)
    step_slot = np.full(num_steps, -1, np.int32)
    step_slot[list(steps)] = np.arange(len(steps))
    layer_slot = np.full(num_layers, -1, np.int32)
    layer_slot[list(layers)] = np.arange(len(layers))
    return Capture(jnp.asarray(step_slot), jnp.asarray(layer_slot), len(steps), len(layers), reducer, branches,
                   stride, dtype)  # fmt: skip
