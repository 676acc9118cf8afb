"""Intervention plans (data) and the pure transforms they stand for."""

from cos_jax.probes.plan import (
    Capture,
    Inject,
    LatentMerge,
    LatentNoise,
    Mix,
    Plan,
    capture_plan,
    ensemble_matrix,
    group_mean_matrix,
    inject_plan,
    merge_plan,
    mix_plan,
    noise_plan,
    swap_matrix,
)

__all__ = [
    "Capture",
    "Inject",
    "LatentMerge",
    "LatentNoise",
    "Mix",
    "Plan",
    "capture_plan",
    "ensemble_matrix",
    "group_mean_matrix",
    "inject_plan",
    "merge_plan",
    "mix_plan",
    "noise_plan",
    "swap_matrix",
]
