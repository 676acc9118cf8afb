"""Precision policies of the DiT forward.

`fp32` computes everything in float32 (parity checks). `bf16` mirrors the official Wan2.2 code under
`torch.autocast(bfloat16)` with bf16 weights (wan22.md §2.8): the residual stream, LayerNorms, modulation
arithmetic, the time MLP and the head stay float32; linears, q/k RMSNorm outputs, GELU and attention run
in bfloat16.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp

PolicyName = Literal["fp32", "bf16"]


@dataclasses.dataclass(frozen=True)
class Policy:
    name: str
    compute_dtype: jnp.dtype  # matmuls, attention, branch activations


POLICIES: dict[str, Policy] = {
    "fp32": Policy("fp32", jnp.dtype(jnp.float32)),
    "bf16": Policy("bf16", jnp.dtype(jnp.bfloat16)),
}


def get_policy(policy: str | Policy) -> Policy:
    if isinstance(policy, Policy):
        return policy
    try:
        return POLICIES[policy]
    except KeyError:
        raise ValueError(f"unknown precision policy {policy!r}; choose one of {sorted(POLICIES)}") from None
