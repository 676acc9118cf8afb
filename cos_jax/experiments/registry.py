"""The experiments by name (imported on first use, so `cos-jax --help` stays light)."""

from __future__ import annotations

from cos_jax.experiments.emergent import Emergent
from cos_jax.experiments.ensemble import Ensemble
from cos_jax.experiments.exploration import Exploration
from cos_jax.experiments.layer_swap import LayerSwap
from cos_jax.experiments.perturb import Perturb
from cos_jax.experiments.propagation import Propagation
from cos_jax.experiments.steps_frames import StepsFrames
from cos_jax.experiments.token_maps import TokenMaps

EXPERIMENTS = {
    e.name: e
    for e in (Perturb(), Propagation(), StepsFrames(), Exploration(), Emergent(), TokenMaps(), LayerSwap(), Ensemble())
}
