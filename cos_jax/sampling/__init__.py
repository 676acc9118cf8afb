"""Flow-matching sampling: schedules, solvers, the denoising scan and its results."""

from cos_jax.sampling.api import initial_noise, sample
from cos_jax.sampling.loop import Conditions, StartState
from cos_jax.sampling.schedules import SAMPLING_PRESETS, SamplingConfig, make_schedule, sampling_preset
from cos_jax.sampling.trajectory import Trajectory

__all__ = [
    "SAMPLING_PRESETS",
    "Conditions",
    "SamplingConfig",
    "StartState",
    "Trajectory",
    "initial_noise",
    "make_schedule",
    "sample",
    "sampling_preset",
]
