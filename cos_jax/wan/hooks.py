"""The hook point of the block scan.

After every transformer block, the hidden state (the `blocks.{i}.resid_post` site, [B, L, D] float32)
passes through a pure function

    hook(hidden, plan_slice, layer) -> (hidden, captures)

where `plan_slice` is this layer's slice of a plan pytree whose leaves carry a leading `num_layers` axis
(the block scan slices it like the stacked weights), and `layer` is the layer index as a traced int32.
`captures` (any pytree, possibly empty) are stacked by the scan into a leading layer axis and returned.
Hooks must be pure and have static structure, so which layer or step they act on is array data and
changing it never recompiles. `identity_hook` with any plan leaves the forward bit-identical.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax

SITE_RESID_POST = "blocks.{i}.resid_post"


class BlockHook(Protocol):
    def __call__(self, hidden: jax.Array, plan_slice: Any, layer: jax.Array) -> tuple[jax.Array, Any]: ...


def identity_hook(hidden: jax.Array, plan_slice: Any, layer: jax.Array) -> tuple[jax.Array, Any]:
    """Leaves the hidden state untouched and captures nothing."""
    del plan_slice, layer
    return hidden, ()
