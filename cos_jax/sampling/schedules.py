"""σ grids and named sampling presets (wan22.md §3, §5; paper.md §2.4).

Flow matching: x_σ = (1−σ)·x0 + σ·ε, the model predicts v = ε − x0 at timestep t, and x̂0 = x_σ − σ·v.
A `Schedule` holds the float32 σ of every step plus the final σ = 0, and the float32 timestep t the
model is conditioned on.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

Grid = Literal["official", "diffsynth", "diffusers"]
Solver = Literal["euler", "unipc"]
NUM_TRAIN_TIMESTEPS = 1000


@dataclasses.dataclass(frozen=True)
class Schedule:
    sigmas: np.ndarray  # float32 [N + 1], last is 0
    timesteps: np.ndarray  # float32 [N], what the DiT sees

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)


def shift_sigmas(sigmas: np.ndarray, shift: float) -> np.ndarray:
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def make_schedule(grid: Grid, steps: int, shift: float) -> Schedule:
    """The σ/t grid of one implementation.

    - official (Wan2.2 `FlowUniPCMultistepScheduler`): σ = linspace(0.999, 0, N+1)[:-1] in float64, shifted,
      t = int(1000σ) (truncated);
    - diffsynth (DiffSynth `FlowMatchScheduler`, the paper's): σ = linspace(1, 0, N+1)[:-1], shifted, t = 1000σ;
    - diffusers (`UniPCMultistepScheduler(use_flow_sigmas=True)`): σ = linspace(1, 1/1000, N+1)[:-1], shifted,
      σ_0 −= 1e-6 when it is 1, t = int(1000σ).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if grid == "official":
        base = np.linspace(1 - 1 / NUM_TRAIN_TIMESTEPS, 0.0, steps + 1)[:-1]
        sigmas = shift_sigmas(base, shift)
        timesteps = np.floor(sigmas * NUM_TRAIN_TIMESTEPS)
    elif grid == "diffsynth":
        sigmas = shift_sigmas(np.linspace(1.0, 0.0, steps + 1)[:-1], shift)
        timesteps = sigmas * NUM_TRAIN_TIMESTEPS
    elif grid == "diffusers":
        sigmas = shift_sigmas(np.linspace(1.0, 1 / NUM_TRAIN_TIMESTEPS, steps + 1)[:-1], shift)
        if abs(sigmas[0] - 1) < 1e-6:
            sigmas[0] -= 1e-6
        timesteps = np.floor(sigmas * NUM_TRAIN_TIMESTEPS)
    else:
        raise ValueError(f"unknown grid {grid!r}; choose 'official', 'diffsynth' or 'diffusers'")
    return Schedule(
        sigmas=np.concatenate([sigmas, [0.0]]).astype(np.float32),
        timesteps=timesteps.astype(np.float32),
    )


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to sample. With two experts, steps whose timestep is >= `boundary` use the high-noise expert."""

    solver: Solver
    steps: int
    shift: float
    grid: Grid
    guidance_high: float
    guidance_low: float
    boundary: float | None = None  # in timestep units (875 = 0.875 * 1000); None: one expert

    def schedule(self) -> Schedule:
        return make_schedule(self.grid, self.steps, self.shift)

    def switch_step(self) -> int:
        """Index of the first low-noise step (== steps when every step is high-noise or there is one expert)."""
        if self.boundary is None:
            return self.steps
        high = self.schedule().timesteps >= self.boundary
        return int(np.argmin(high)) if not high.all() else self.steps

    def replace(self, **changes) -> SamplingConfig:
        return dataclasses.replace(self, **changes)


SAMPLING_PRESETS: dict[str, SamplingConfig] = {
    "official-t2v-a14b": SamplingConfig("unipc", 40, 12.0, "official", 4.0, 3.0, boundary=875),
    "official-i2v-a14b": SamplingConfig("unipc", 40, 5.0, "official", 3.5, 3.5, boundary=900),
    "official-ti2v-5b": SamplingConfig("unipc", 50, 5.0, "official", 5.0, 5.0),
    # The paper's DiffSynth settings: Euler, 50 steps, shift 5, CFG 5 on both experts, switch once t < 875.
    "paper": SamplingConfig("euler", 50, 5.0, "diffsynth", 5.0, 5.0, boundary=875),
}


def sampling_preset(name: str) -> SamplingConfig:
    try:
        return SAMPLING_PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown sampling preset {name!r}; choose one of {sorted(SAMPLING_PRESETS)}") from None
