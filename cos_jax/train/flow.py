"""Flow-matching training of the toy world: loss, optimizer, EMA and one jitted step.

x_σ = (1−σ)·x0 + σ·ε, target v = ε − x0, σ drawn as the paper sampler's grid is spread (u ~ U(0,1)
shifted by 5), t = 1000σ; the prompt is replaced by the empty prompt with probability `cond_dropout`
(the image condition stays, as in Wan's CFG). The batch is drawn on device from the dataset arrays by
a key folded with the step, so a resumed run draws exactly the batches it would have drawn.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from cos_jax.parallel import constrain
from cos_jax.wan.codec import to_unit_range
from cos_jax.wan.toy import ToyModel, ToySpec


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch: int = 256
    steps: int = 10_000
    lr: float = 4e-4
    warmup: int = 500
    weight_decay: float = 0.01
    clip: float = 1.0
    ema_decay: float = 0.999
    shift: float = 5.0
    cond_dropout: float = 0.1
    policy: str = "bf16"
    attention: str = "auto"  # attention backend of the DiT (see cos_jax.wan.attention)
    remat: str = "none"  # per-block rematerialisation (cos_jax.wan.dit.REMAT_POLICIES)
    scan_unroll: int = 1  # blocks per scan iteration
    seed: int = 0


@dataclasses.dataclass
class TrainState:
    step: jax.Array
    params: Any  # nnx.State of the ToyModel's parameters
    opt_state: Any
    ema: Any
    key: jax.Array  # raw uint32 key data (checkpoints hold plain arrays)


jax.tree_util.register_dataclass(TrainState, data_fields=["step", "params", "opt_state", "ema", "key"], meta_fields=[])


def warmup_cosine(cfg: TrainConfig) -> optax.Schedule:
    """Linear warm-up to `lr` over `warmup` steps, then a cosine decay to lr / 10 at `steps`."""
    return optax.warmup_cosine_decay_schedule(0.0, cfg.lr, cfg.warmup, max(cfg.steps, cfg.warmup + 1), cfg.lr * 0.1)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip), optax.adamw(warmup_cosine(cfg), b2=0.99, weight_decay=cfg.weight_decay)
    )


def init_state(model: ToyModel, cfg: TrainConfig) -> tuple[nnx.GraphDef, TrainState]:
    graphdef, params = nnx.split(model, nnx.Param)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=make_optimizer(cfg).init(params),
        ema=jax.tree.map(jnp.copy, params),
        key=jax.random.key_data(jax.random.key(cfg.seed)),
    )
    return graphdef, state


def flow_loss(
    model: ToyModel, spec: ToySpec, cfg: TrainConfig, batch: dict, prompts: dict, key: jax.Array, **dit_options
):
    """Mean squared velocity error on one batch {video uint8 [B,T,H,W,3], prompt int32 [B]}.

    `prompts` is the prompt table {prompt_ids, prompt_mask} [U, L] (row 0: the empty prompt); it is
    encoded once and gathered per sample, which equals encoding each sample's prompt. `dit_options` go to
    `velocity_loss` (a σ range, a LoRA).
    """
    k_sigma, k_eps, k_drop = jax.random.split(key, 3)
    video = to_unit_range(batch["video"])
    x0 = spec.codec.encode(video)
    y = spec.codec.i2v_condition(video[:, 0], spec.frames)
    row = jnp.where(jax.random.bernoulli(k_drop, cfg.cond_dropout, (x0.shape[0],)), 0, batch["prompt"])
    context = model.text(prompts["prompt_ids"], prompts["prompt_mask"], policy=cfg.policy)[row]
    return velocity_loss(model.dit, cfg, x0, y, context, k_sigma, k_eps, **dit_options)


def velocity_loss(
    dit,
    cfg: TrainConfig,
    x0: jax.Array,
    y: jax.Array | None,
    context: jax.Array,
    k_sigma: jax.Array,
    k_eps: jax.Array,
    *,
    u_range: tuple[float, float] = (0.0, 1.0),
    lora=None,
    lora_scale: float = 1.0,
) -> jax.Array:
    """The flow-matching loss of `dit` on clean latents x0 [B, F, H, W, C] (with I2V condition y and text
    context): σ from u ~ U(u_range) shifted by `cfg.shift`, x_σ = (1−σ)·x0 + σ·ε, target ε − x0. `u_range`
    narrows the draw to a σ range (see `train.lora.u_range`); `lora` runs the DiT with adapters."""
    b = x0.shape[0]
    u = jax.random.uniform(k_sigma, (b,), minval=u_range[0], maxval=u_range[1])
    sigma = cfg.shift * u / (1 + (cfg.shift - 1) * u)
    eps = jax.random.normal(k_eps, x0.shape)
    s = sigma[:, None, None, None, None]
    x = constrain((1 - s) * x0 + s * eps, ("batch", None, None, None, None))
    v = dit(x, 1000.0 * sigma, context, y, policy=cfg.policy, attention_backend=cfg.attention, remat=cfg.remat,
            scan_unroll=cfg.scan_unroll, lora=lora, lora_scale=lora_scale)  # fmt: skip
    return jnp.mean(jnp.square(v - (eps - x0)))


def split_prompt_table(data: dict) -> tuple[dict, dict]:
    """(per-sample arrays, prompt table) from a `task_arrays` dict."""
    table = {k: v for k, v in data.items() if k.startswith("prompt_")}
    return {k: v for k, v in data.items() if k not in table}, table


def draw_batch(
    cfg: TrainConfig, key_data: jax.Array, step: jax.Array, data: dict, keys: tuple[str, ...] = ("video", "prompt")
) -> tuple[dict, jax.Array]:
    """The batch of `step` (the arrays `keys` of `data` at drawn rows; a key folded with the step, so
    resumed runs draw the same batches) and the key of its loss."""
    key = jax.random.fold_in(jax.random.wrap_key_data(key_data), step)
    k_batch, k_loss = jax.random.split(key)
    index = jax.random.randint(k_batch, (cfg.batch,), 0, data[keys[0]].shape[0])
    batch = {k: constrain(data[k][index], ("batch",) + (None,) * (data[k].ndim - 1)) for k in keys}
    return batch, k_loss


def train_step(graphdef, spec: ToySpec, cfg: TrainConfig, state: TrainState, data: dict, prompts: dict):
    """One optimizer step on a batch drawn from `data` (device arrays, {video, prompt}); `prompts` is the
    prompt table. Returns (state, metrics)."""
    batch, k_loss = draw_batch(cfg, state.key, state.step, data)

    def loss_of(params):
        return flow_loss(nnx.merge(graphdef, params), spec, cfg, batch, prompts, k_loss)

    loss, grads = jax.value_and_grad(loss_of)(state.params)
    optimizer = make_optimizer(cfg)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    decay = jnp.minimum(cfg.ema_decay, (1.0 + state.step) / (10.0 + state.step))
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema, params)
    new = TrainState(state.step + 1, params, opt_state, ema, state.key)
    return new, {"loss": loss, "grad_norm": optax.tree.norm(grads)}
