"""Low-rank adapters (LoRA) on the DiT's block linears, as trained by DiffSynth-Studio for VBVR-Wan2.2.

A LoRA holds, per target module and layer, `down` [L, in, r] and `up` [L, r, out]; the block runs with
kernel + scale · down @ up, added in float32 inside the layer scan, so one layer's merged kernels exist at a
time and the base weights are never copied. `up` starts at zero, so a fresh LoRA leaves the model's output
unchanged. Target names are DiffSynth's (`self_attn.q`, …, `ffn.0`, `ffn.2`); VBVR trains all ten.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from cos_jax.errors import UsageError
from cos_jax.wan.config import DiTConfig

F32 = jnp.float32

# DiffSynth / PEFT module name -> attribute path of the Linear in `WanBlock`
TARGETS: dict[str, tuple[str, ...]] = {
    **{f"{attn}.{p}": (attn, p) for attn in ("self_attn", "cross_attn") for p in "qkvo"},
    "ffn.0": ("ffn_up",),
    "ffn.2": ("ffn_down",),
}
VBVR_TARGETS = tuple(TARGETS)  # q, k, v, o of both attentions, ffn.0, ffn.2 (reference: vbvr.md, paper.md §2.1)

LoraParams = dict[str, dict[str, Float[Array, "L a b"]]]  # target -> {"down": [L, in, r], "up": [L, r, out]}


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    """Rank, scale α / r (DiffSynth's default α = r gives scale 1) and the target modules."""

    rank: int = 32
    alpha: float | None = None  # None: α = rank
    targets: tuple[str, ...] = VBVR_TARGETS

    @property
    def scale(self) -> float:
        return 1.0 if self.alpha is None else self.alpha / self.rank

    def check(self) -> None:
        """UsageError naming a rank below 1 or a target the DiT lacks."""
        if not isinstance(self.rank, int) or self.rank < 1:
            raise UsageError(f"LoRA rank {self.rank!r}: needs an integer ≥ 1 (VBVR uses 32)")
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown or not self.targets:
            raise UsageError(
                f"LoRA targets {unknown or '[]'}: the Wan DiT's block linears are {', '.join(TARGETS)}; pick from these"
            )


def target_shape(cfg: DiTConfig, target: str) -> tuple[int, int]:
    """(in, out) of a target's kernel."""
    if target == "ffn.0":
        return cfg.dim, cfg.ffn_dim
    if target == "ffn.2":
        return cfg.ffn_dim, cfg.dim
    return cfg.dim, cfg.dim


def init_lora(cfg: DiTConfig, lora: LoraConfig, key: jax.Array, dtype=F32) -> LoraParams:
    """PEFT's initialisation: down ~ U(±1/√in) (Kaiming-uniform, a = √5), up = 0."""
    lora.check()
    params = {}
    for target, k in zip(lora.targets, jax.random.split(key, len(lora.targets)), strict=True):
        d_in, d_out = target_shape(cfg, target)
        bound = 1.0 / math.sqrt(d_in)
        params[target] = {
            "down": jax.random.uniform(k, (cfg.num_layers, d_in, lora.rank), dtype, -bound, bound),
            "up": jnp.zeros((cfg.num_layers, lora.rank, d_out), dtype),
        }
    return params


def target_module(block_state, target: str):
    """The state node of a target's linear (holding its `kernel`) in a block's state, or in the stacked
    blocks' state (`nnx.state(dit.blocks)`)."""
    node = block_state
    for name in TARGETS[target]:
        node = node[name]
    return node


def kernel_path(target: str) -> str:
    """The target's kernel as `convert.lora.Lora` keys it: `blocks.<module path>.kernel`."""
    return ".".join(("blocks", *TARGETS[target], "kernel"))


def with_lora(block: nnx.Module, lora: LoraParams, scale: float) -> nnx.Module:
    """One layer's block with its LoRA added: kernel (float32) + scale · down @ up. `lora` holds this
    layer's slices ({target: {"down": [in, r], "up": [r, out]}})."""
    graphdef, state = nnx.split(block)
    for target, factors in lora.items():
        node = target_module(state, target)
        kernel = node["kernel"]
        delta = jnp.dot(factors["down"].astype(F32), factors["up"].astype(F32), precision="highest")
        node["kernel"] = kernel.replace(kernel[...].astype(F32) + jnp.asarray(scale, F32) * delta)
    return nnx.merge(graphdef, state)
