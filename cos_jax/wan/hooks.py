"""The hook point of the block scan.

After every transformer block, the hidden state (the `blocks.{i}.resid_post` site, [B, L, D] float32)
passes through a pure function

    hook(hidden, plan_slice, layer, state, block_input) -> (hidden, state)

- `plan_slice` is this layer's slice of a plan pytree whose leaves carry a leading `num_layers` axis
  (the block scan slices it like the stacked weights);
- `layer` is the layer index as a traced int32;
- `state` is any pytree threaded through the block scan (e.g. capture buffers written at chosen layers),
  returned by `WanDiT.forward_hooked`; its structure and shapes must not change;
- `block_input` is the hidden state the block received (so `hidden - block_input` is the block's own
  residual update).

Hooks must be pure with static structure: which layer or step they act on is array data, so changing it
never recompiles. `identity_hook` leaves the forward bit-identical to a call without a hook.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax

SITE_RESID_POST = "blocks.{i}.resid_post"


class BlockHook(Protocol):
    def __call__(
        self, hidden: jax.Array, plan_slice: Any, layer: jax.Array, state: Any, block_input: jax.Array
    ) -> tuple[jax.Array, Any]: ...


def identity_hook(
    hidden: jax.Array, plan_slice: Any, layer: jax.Array, state: Any, block_input: jax.Array
) -> tuple[jax.Array, Any]:
    """Leaves the hidden state and the state untouched."""
    del plan_slice, layer, block_input
    return hidden, state
