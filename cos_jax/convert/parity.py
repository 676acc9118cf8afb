"""Parity of the cos-jax DiT against diffusers' `WanTransformer3DModel` on tiny random configs.

Shared by the test suite and `cos-jax selfcheck` (`make demo`). Every case builds a random float32
reference, converts its weights through the key tables, runs both on the same inputs and reports
max|Δ| / max|ref| of the output.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from cos_jax.convert import reference
from cos_jax.convert.dit_keys import Layout, rename
from cos_jax.convert.load import dit_from_state_dict
from cos_jax.wan.config import DiTConfig

TOLERANCE = 1e-5  # max|Δ| <= TOLERANCE * max|ref|


@dataclasses.dataclass(frozen=True)
class ParityCase:
    name: str
    config: DiTConfig
    latent: tuple[int, int, int]  # (F, H, W) latent size
    batch: int = 2


def _tiny(model_type, in_dim, out_dim, heads=2, head_dim=24, layers=2, ffn=64) -> DiTConfig:
    return DiTConfig(model_type, dim=heads * head_dim, ffn_dim=ffn, num_heads=heads, num_layers=layers,
                     in_dim=in_dim, out_dim=out_dim, text_dim=32)  # fmt: skip


PARITY_CASES: tuple[ParityCase, ...] = (
    ParityCase("t2v 16->16", _tiny("t2v", 16, 16), (3, 4, 6)),
    ParityCase("i2v 36->16 with y", _tiny("i2v", 36, 16), (3, 4, 6)),
    ParityCase("ti2v 48->48 per-token t", _tiny("ti2v", 48, 48), (3, 4, 6)),
    ParityCase("t2v 3 heads x 20, 5x6x10", _tiny("t2v", 16, 16, heads=3, head_dim=20, layers=3), (5, 6, 10), 1),
    ParityCase("i2v 4 heads x 16, 2x8x4", _tiny("i2v", 36, 16, heads=4, head_dim=16, ffn=96), (2, 8, 4)),
)


@dataclasses.dataclass(frozen=True)
class ParityResult:
    case: str
    layout: str
    reference: str
    max_abs_diff: float
    max_abs_ref: float

    @property
    def relative(self) -> float:
        return self.max_abs_diff / self.max_abs_ref

    @property
    def ok(self) -> bool:
        return self.relative <= TOLERANCE


def cos_forward(model, inputs: reference.ParityInputs, **kwargs) -> np.ndarray:
    y = None if inputs.y is None else jnp.asarray(inputs.y)
    out = model(jnp.asarray(inputs.x), jnp.asarray(inputs.timesteps), jnp.asarray(inputs.context), y, **kwargs)
    return np.asarray(out)


def run_case(case: ParityCase, layout: Layout = "diffusers", official_time: bool = True, seed: int = 0):
    """Compare one case; `layout='official'` loads the weights after renaming them to official keys."""
    ref_model = reference.random_reference_dit(case.config, seed=seed, official_time=official_time)
    inputs = reference.random_inputs(case.config, case.batch, case.latent, seed=seed)
    expected = reference.reference_forward(ref_model, inputs)
    weights = reference.state_dict_numpy(ref_model)
    if layout == "official":
        weights = rename(weights, "diffusers", "official")
    model = dit_from_state_dict(weights, case.config, layout=layout)
    got = cos_forward(model, inputs)
    return ParityResult(
        case=case.name,
        layout=layout,
        reference="official sinusoid" if official_time else "stock diffusers",
        max_abs_diff=float(np.abs(got - expected).max()),
        max_abs_ref=float(np.abs(expected).max()),
    )
