"""Small parameter-holding layers and norm functions used by the DiT.

Every parameter is an `nnx.Param` carrying logical axis names (`out_sharding` metadata, never a mesh
axis); `cos_jax.parallel` maps them to a mesh through one rules table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def param(rngs: nnx.Rngs | None, shape: Sequence[int], axes: Sequence[str | None], init: str, dtype) -> nnx.Param:
    """Create a parameter with logical axes; `init` is 'zeros', 'ones', 'fan_in' or 'rsqrt_last'."""
    shape = tuple(shape)
    if init == "zeros":
        value = jnp.zeros(shape, dtype)
    elif init == "ones":
        value = jnp.ones(shape, dtype)
    elif init == "fan_in":  # normal with std 1/sqrt(fan_in); fan_in is the product of all but the last axis
        std = 1.0 / math.sqrt(math.prod(shape[:-1]))
        value = jax.random.normal(rngs.params(), shape, dtype) * jnp.asarray(std, dtype)
    elif init == "rsqrt_last":  # the official modulation init: randn / sqrt(dim)
        value = jax.random.normal(rngs.params(), shape, dtype) * jnp.asarray(1 / math.sqrt(shape[-1]), dtype)
    else:
        raise ValueError(f"unknown init {init!r}")
    return nnx.Param(value, out_sharding=tuple(axes), eager_sharding=False)


class Linear(nnx.Module):
    """y = x @ kernel + bias, kernel (in, out). Computes in `dtype` (inputs and weights are cast)."""

    def __init__(self, d_in: int, d_out: int, axes: tuple[str | None, str | None], *, rngs, param_dtype):
        self.kernel = param(rngs, (d_in, d_out), axes, "fan_in", param_dtype)
        self.bias = param(rngs, (d_out,), axes[1:], "zeros", param_dtype)

    def __call__(self, x: jax.Array, dtype) -> jax.Array:
        y = jnp.dot(x.astype(dtype), self.kernel[...].astype(dtype), preferred_element_type=dtype)
        return y + self.bias[...].astype(dtype)


class RMSNorm(nnx.Module):
    """Wan RMSNorm: normalise in float32, cast to the input dtype, then scale (over the full width)."""

    def __init__(self, dim: int, axis: str, eps: float, *, param_dtype):
        self.scale = param(None, (dim,), (axis,), "ones", param_dtype)
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        normed = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return normed.astype(x.dtype) * self.scale[...].astype(x.dtype)


def layer_norm(x: jax.Array, eps: float) -> jax.Array:
    """Parameter-free LayerNorm over the last axis, in float32."""
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


class AffineLayerNorm(nnx.Module):
    """LayerNorm with weight and bias, computed in float32 (the cross-attention `norm3`)."""

    def __init__(self, dim: int, axis: str, eps: float, *, param_dtype):
        self.scale = param(None, (dim,), (axis,), "ones", param_dtype)
        self.bias = param(None, (dim,), (axis,), "zeros", param_dtype)
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        return layer_norm(x, self.eps) * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)


def gelu_tanh(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=True)
