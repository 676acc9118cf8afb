"""The Wan2.2 video DiT (`WanModel`) in Flax NNX: stacked blocks run by `lax.scan`.

Latents are channel-last: x [B, F, H, W, C]. The forward is
patchify -> patch embedding -> blocks (self-attention with q/k RMSNorm + 3D RoPE, ungated cross-attention,
gated FFN; all modulated by the time embedding) -> modulated head -> unpatchify (wan22.md §2).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from cos_jax.parallel import constrain
from cos_jax.wan.attention import Backend, context_parallel_attention
from cos_jax.wan.config import DiTConfig
from cos_jax.wan.hooks import BlockHook
from cos_jax.wan.layers import AffineLayerNorm, Linear, RMSNorm, gelu_tanh, layer_norm, param
from cos_jax.wan.lora import LoraParams, with_lora
from cos_jax.wan.precision import Policy, get_policy
from cos_jax.wan.rope import apply_rope, rope_tables
from cos_jax.wan.timestep import TimestepTable, sinusoid, timestep_table

F32 = jnp.float32
RESIDUAL_AXES = ("batch", "length", "act_embed")

# Rematerialisation of each block in the backward pass (training): what the forward keeps for it.
REMAT_POLICIES = {
    "none": None,  # keep every intermediate (no recomputation)
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # keep matmul outputs only
    "full": jax.checkpoint_policies.nothing_saveable,  # keep only each block's input
}


class Attention(nnx.Module):
    """Multi-head attention with RMSNorm over the full width on q and k (before the head split)."""

    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs, param_dtype):
        d = cfg.dim
        self.q = Linear(d, d, ("embed", "heads"), rngs=rngs, param_dtype=param_dtype)
        self.k = Linear(d, d, ("embed", "heads"), rngs=rngs, param_dtype=param_dtype)
        self.v = Linear(d, d, ("embed", "heads"), rngs=rngs, param_dtype=param_dtype)
        self.o = Linear(d, d, ("heads", "embed"), rngs=rngs, param_dtype=param_dtype)
        self.norm_q = RMSNorm(d, "heads", cfg.eps, param_dtype=param_dtype)
        self.norm_k = RMSNorm(d, "heads", cfg.eps, param_dtype=param_dtype)
        self.num_heads = cfg.num_heads

    def __call__(self, x, context, policy: Policy, backend: Backend, rope=None) -> jax.Array:
        dt = policy.compute_dtype
        b, lq, d = x.shape
        heads = (self.num_heads, d // self.num_heads)
        q = self.norm_q(self.q(x, dt)).reshape(b, lq, *heads)
        k = self.norm_k(self.k(context, dt)).reshape(b, context.shape[1], *heads)
        v = self.v(context, dt).reshape(b, context.shape[1], *heads)
        if rope is not None:
            q, k = (apply_rope(t, *rope).astype(dt) for t in (q, k))
        q = constrain(q, ("batch", "length", "act_heads", None))
        out = context_parallel_attention(q, k, v, backend).reshape(b, lq, d)  # queries split over `context`
        return self.o(out, dt)


class WanBlock(nnx.Module):
    """One `WanAttentionBlock`: modulated self-attention, cross-attention, modulated FFN (gated residuals)."""

    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs, param_dtype):
        self.modulation = param(rngs, (6, cfg.dim), ("modulation", "embed"), "rsqrt_last", param_dtype)
        self.self_attn = Attention(cfg, rngs=rngs, param_dtype=param_dtype)
        self.norm_cross = AffineLayerNorm(cfg.dim, "embed", cfg.eps, param_dtype=param_dtype)
        self.cross_attn = Attention(cfg, rngs=rngs, param_dtype=param_dtype)
        self.ffn_up = Linear(cfg.dim, cfg.ffn_dim, ("embed", "mlp"), rngs=rngs, param_dtype=param_dtype)
        self.ffn_down = Linear(cfg.ffn_dim, cfg.dim, ("mlp", "embed"), rngs=rngs, param_dtype=param_dtype)
        self.eps = cfg.eps

    def __call__(self, x, context, e0, steps: TimestepTable, rope, policy: Policy, backend: Backend):
        dt = policy.compute_dtype
        m = self.modulation[...].astype(F32) + e0  # [B, K, 6, D]
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = (steps.select(m[:, :, i]) for i in range(6))

        h = layer_norm(x, self.eps) * (1 + scale_sa) + shift_sa
        x = x + self.self_attn(h, h, policy, backend, rope).astype(F32) * gate_sa
        h = self.norm_cross(x)
        x = x + self.cross_attn(h, context, policy, backend).astype(F32)
        h = layer_norm(x, self.eps) * (1 + scale_ff) + shift_ff
        y = self.ffn_down(gelu_tanh(self.ffn_up(h, dt)), dt)
        return x + y.astype(F32) * gate_ff


class BlockInputs(NamedTuple):
    """What the blocks read besides their hidden state, made once per forward by `WanDiT.embed`."""

    hidden: Float[Array, "B L D"]  # patch embeddings: the first block's input
    context: Float[Array, "B T D"]  # embedded text
    e: Float[Array, "B K D"]  # time embedding per distinct timestep (modulates the head)
    e0: Float[Array, "B K 6 D"]  # block modulation per distinct timestep
    steps: TimestepTable
    rope: tuple[jax.Array, jax.Array]  # cos, sin [L, head_dim / 2]


class WanDiT(nnx.Module):
    """Wan2.2 `WanModel`. Call it on channel-last latents; see `__call__`."""

    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.config = cfg
        d, pt, ph, pw = cfg.dim, *cfg.patch_size
        self.patch_kernel = param(rngs, (pt, ph, pw, cfg.in_dim, d), (None, None, None, "patch_in", "embed"),
                                  "fan_in", param_dtype)  # fmt: skip
        self.patch_bias = param(rngs, (d,), ("embed",), "zeros", param_dtype)
        self.text_in = Linear(cfg.text_dim, d, ("text_embed", "embed"), rngs=rngs, param_dtype=param_dtype)
        self.text_out = Linear(d, d, ("embed", "embed"), rngs=rngs, param_dtype=param_dtype)
        self.time_in = Linear(cfg.freq_dim, d, ("freq", "embed"), rngs=rngs, param_dtype=param_dtype)
        self.time_out = Linear(d, d, ("embed", "embed"), rngs=rngs, param_dtype=param_dtype)
        self.time_proj = Linear(d, 6 * d, ("embed", "modulation"), rngs=rngs, param_dtype=param_dtype)

        @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def make_blocks(key):
            return WanBlock(cfg, rngs=nnx.Rngs(key), param_dtype=param_dtype)

        self.blocks = make_blocks(jax.random.split(rngs.params(), cfg.num_layers))
        self.head_modulation = param(rngs, (2, d), ("modulation", "embed"), "rsqrt_last", param_dtype)
        self.head = Linear(d, cfg.patch_features, ("embed", "patch_out"), rngs=rngs, param_dtype=param_dtype)

    def __call__(
        self,
        x: Float[Array, "B F H W Cx"],
        timesteps: Float[Array, " B"] | Float[Array, "B L"],
        context: Float[Array, "B T text_dim"],
        y: Float[Array, "B F H W Cy"] | None = None,
        *,
        policy: str | Policy = "fp32",
        attention_backend: Backend = "auto",
        timestep_slots: int = 2,
        remat: str = "none",
        scan_unroll: int = 1,
        lora: LoraParams | None = None,
        lora_scale: float = 1.0,
    ) -> Float[Array, "B F H W out_dim"]:
        """Velocity prediction for latents `x` (with I2V conditioning `y` concatenated on channels).

        `timesteps` is [B] or per token [B, L] (L = patch tokens, frame-major; TI2V). `context` is the
        text-encoder output already padded to its fixed length (the official 512 rows, zeros after the
        prompt). `timestep_slots` bounds the distinct per-token timesteps of one sample (see
        `timestep_table`). `remat` (a `REMAT_POLICIES` name) and `scan_unroll` trade memory for speed
        when differentiating (training); they never change the values. `lora` (see `cos_jax.wan.lora`) adds
        lora_scale · down @ up to the targeted kernels, layer by layer.
        """
        out, _ = self.forward_hooked(
            x, timesteps, context, y, policy=policy, attention_backend=attention_backend,
            timestep_slots=timestep_slots, remat=remat, scan_unroll=scan_unroll, lora=lora, lora_scale=lora_scale,
        )  # fmt: skip
        return out

    def forward_hooked(
        self,
        x,
        timesteps,
        context,
        y=None,
        *,
        hook: BlockHook | None = None,
        plan: Any = None,
        state: Any = None,
        policy: str | Policy = "fp32",
        attention_backend: Backend = "auto",
        timestep_slots: int = 2,
        remat: str = "none",
        scan_unroll: int = 1,
        lora: LoraParams | None = None,
        lora_scale: float = 1.0,
    ) -> tuple[jax.Array, Any]:
        """`__call__` with a hook after every block (see `cos_jax.wan.hooks`); returns (velocity, state).

        `plan` is a pytree whose leaves have a leading `num_layers` axis; `state` is threaded through the
        hook calls and returned. Without a hook the blocks run exactly as in `__call__`.
        """
        policy = get_policy(policy)
        if remat not in REMAT_POLICIES:
            raise ValueError(f"unknown remat policy {remat!r}; choose one of {tuple(REMAT_POLICIES)}")
        inputs = self.embed(x, timesteps, context, y, policy=policy, timestep_slots=timestep_slots)

        def run_block(block, lora_slice, hidden, inputs):
            if lora_slice is not None:  # inside the remat boundary: the merged kernels are recomputed, not kept
                block = with_lora(block, lora_slice, lora_scale)
            return block(hidden, inputs.context, inputs.e0, inputs.steps, inputs.rope, policy, attention_backend)

        if remat != "none":
            run_block = jax.checkpoint(run_block, policy=REMAT_POLICIES[remat])

        def body(carry, xs):
            hidden, hook_state = carry
            block, plan_slice, layer, lora_slice = xs
            block_input = hidden
            hidden = run_block(block, lora_slice, hidden, inputs)
            if hook is not None:
                hidden, hook_state = hook(hidden, plan_slice, layer, hook_state, block_input)
            return (constrain(hidden, RESIDUAL_AXES), hook_state), None

        layers = jnp.arange(self.config.num_layers)
        (h, state), _ = jax.lax.scan(
            body, (inputs.hidden, state), (self.blocks, plan, layers, lora), unroll=scan_unroll
        )
        return self.head_output(h, inputs, self.patch_grid(x.shape)), state

    def embed(
        self, x, timesteps, context, y=None, *, policy: str | Policy = "fp32", timestep_slots: int = 2
    ) -> BlockInputs:
        """Everything before the blocks (`BlockInputs`): patch embedding, time and text embeddings, RoPE.

        With `head_output` and the blocks (`WanBlock.__call__`) this is the forward in pieces, e.g. for
        block-by-block validation; `forward_hooked` is exactly embed -> blocks -> head_output."""
        cfg = self.config
        policy = get_policy(policy)
        if y is not None:
            x = jnp.concatenate([x, y.astype(x.dtype)], axis=-1)
        tokens, grid = self._patchify(x)
        h = self._embed_patches(tokens, policy)

        steps = timestep_table(timesteps, timestep_slots)
        if steps.index is not None and steps.index.shape[1] != h.shape[1]:
            raise ValueError(f"per-token timesteps have {steps.index.shape[1]} tokens; the latent has {h.shape[1]}")
        e = self.time_out(jax.nn.silu(self.time_in(sinusoid(steps.values, cfg.freq_dim), F32)), F32)
        e0 = self.time_proj(jax.nn.silu(e), F32).reshape(*e.shape[:-1], 6, cfg.dim)  # [B, K, 6, D]
        ctx = self.text_out(gelu_tanh(self.text_in(context, policy.compute_dtype)), policy.compute_dtype)
        rope = rope_tables(grid, cfg.rope_pairs, cfg.rope_theta, cfg.rope_max_positions)
        return BlockInputs(h, ctx, e, e0, steps, rope)

    def head_output(self, hidden, inputs: BlockInputs, grid: tuple[int, int, int]) -> jax.Array:
        """The modulated head and unpatchify of the last block's output: [B, F, H, W, out_dim]."""
        m = self.head_modulation[...].astype(F32) + inputs.e[:, :, None, :]  # [B, K, 2, D]
        shift, scale = inputs.steps.select(m[:, :, 0]), inputs.steps.select(m[:, :, 1])
        out = self.head(layer_norm(hidden, self.config.eps) * (1 + scale) + shift, F32)
        return self._unpatchify(out, grid)

    def patch_grid(self, latent_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """The (frames, rows, columns) patch grid of a [B, F, H, W, C] latent."""
        _, f, hh, ww = latent_shape[:4]
        pt, ph, pw = self.config.patch_size
        return f // pt, hh // ph, ww // pw

    def _patchify(self, x: jax.Array) -> tuple[jax.Array, tuple[int, int, int]]:
        cfg = self.config
        b, f, hh, ww, c = x.shape
        pt, ph, pw = cfg.patch_size
        if c != cfg.in_dim:
            hint = " (I2V models take y = [mask | cond-latent] as well)" if cfg.model_type == "i2v" else ""
            raise ValueError(f"input has {c} channels after concatenating y; the model expects {cfg.in_dim}{hint}")
        if f % pt or hh % ph or ww % pw:
            raise ValueError(f"latent (F, H, W) = {(f, hh, ww)} is not divisible by the patch size {cfg.patch_size}")
        grid = self.patch_grid(x.shape)
        x = x.reshape(b, grid[0], pt, grid[1], ph, grid[2], pw, c).transpose(0, 1, 3, 5, 2, 4, 6, 7)
        return x.reshape(b, grid[0] * grid[1] * grid[2], pt * ph * pw * c), grid

    def _embed_patches(self, tokens: jax.Array, policy: Policy) -> jax.Array:
        dt = policy.compute_dtype
        kernel = self.patch_kernel[...].reshape(-1, self.config.dim).astype(dt)
        h = jnp.dot(tokens.astype(dt), kernel, preferred_element_type=dt) + self.patch_bias[...].astype(dt)
        return constrain(h.astype(F32), RESIDUAL_AXES)

    def _unpatchify(self, out: jax.Array, grid: tuple[int, int, int]) -> jax.Array:
        cfg = self.config
        (f, hh, ww), (pt, ph, pw) = grid, cfg.patch_size
        b = out.shape[0]
        out = out.reshape(b, f, hh, ww, pt, ph, pw, cfg.out_dim).transpose(0, 1, 4, 2, 5, 3, 6, 7)
        return out.reshape(b, f * pt, hh * ph, ww * pw, cfg.out_dim)


def init_dit(cfg: DiTConfig, seed: int = 0, param_dtype=jnp.float32) -> WanDiT:
    """A randomly initialised DiT."""
    return WanDiT(cfg, rngs=nnx.Rngs(seed), param_dtype=param_dtype)


def abstract_dit(cfg: DiTConfig, param_dtype=jnp.float32) -> WanDiT:
    """The DiT's structure with `ShapeDtypeStruct` leaves (no memory), e.g. for full-size presets."""
    return nnx.eval_shape(lambda: init_dit(cfg, param_dtype=param_dtype))


def count_params(model: nnx.Module) -> int:
    return sum(int(v.size) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
