"""LoRA fine-tuning the VBVR way: rank-r adapters on the block linears of a frozen DiT, trained with the
flow-matching loss on one σ range, so each expert of a two-expert model gets its own LoRA (VBVR: the
high-noise LoRA above the boundary σ ≈ 0.9, the low-noise one below; reference: vbvr.md, paper.md §2.1).

Only the LoRA factors are differentiated and only they are in the optimizer state; the base parameters
are a constant of the step. A trained LoRA is saved in DiffSynth/PEFT naming
(`blocks.N.<target>.lora_{A,B}.default.weight`, PyTorch orientation, the scale folded into B), which
`cos-jax convert --lora/--lora-high/--lora-low` merges at scale 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cos_jax.arrays_io import atomic_write
from cos_jax.errors import UsageError
from cos_jax.train.flow import TrainConfig, draw_batch, flow_loss, velocity_loss, warmup_cosine
from cos_jax.wan.config import DiTConfig
from cos_jax.wan.lora import F32, LoraConfig, LoraParams, init_lora, kernel_path, target_module


@dataclasses.dataclass(frozen=True)
class LoraTrainConfig:
    """The flow-matching settings (`train`: batch, steps, lr, shift, dropout, policy, remat, seed), the
    adapter (`lora`), the σ range [lo, hi] the LoRA is trained on, and the rate's schedule (`anneal`)."""

    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(lr=1e-4, warmup=100, weight_decay=0.0))
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    sigma_range: tuple[float, float] = (0.0, 1.0)
    anneal: bool = False  # cosine-decay the rate to lr / 10 over train.steps (default: constant after warm-up)


def u_range(sigma_range: tuple[float, float], shift: float) -> tuple[float, float]:
    """The uniform draws u whose shifted σ = s·u / (1 + (s−1)·u) falls in `sigma_range`; an empty or
    out-of-[0, 1] range is a UsageError."""
    lo, hi = (float(v) for v in sigma_range)
    if not 0.0 <= lo < hi <= 1.0:
        raise UsageError(f"σ range [{lo}, {hi}] is empty or outside [0, 1]; give lo < hi, e.g. 0.9,1 (high noise)")
    inverse = lambda sigma: sigma / (shift - (shift - 1.0) * sigma)
    return inverse(lo), inverse(hi)


@dataclasses.dataclass
class LoraState:
    step: jax.Array
    lora: LoraParams
    opt_state: Any
    key: jax.Array  # raw uint32 key data


jax.tree_util.register_dataclass(LoraState, data_fields=["step", "lora", "opt_state", "key"], meta_fields=[])


def lora_shardings(dit: nnx.Module, lora: LoraParams, mesh) -> dict:
    """NamedShardings of a LoRA's factors split like their kernels under the mesh rules: down [L, in, r]
    over the kernel's input axis, up [L, r, out] over its output axis (FSDP splits `embed`, tensor
    parallelism `heads`/`mlp`); the layer and rank axes are whole."""
    from jax.sharding import NamedSharding

    from cos_jax.parallel import logical_to_spec

    blocks = nnx.state(dit.blocks, nnx.Param)
    out = {}
    for target, factors in lora.items():
        _, axis_in, axis_out = target_module(blocks, target)["kernel"].get_metadata()["out_sharding"]
        axes = {"down": ("layers", axis_in, None), "up": ("layers", None, axis_out)}
        out[target] = {k: NamedSharding(mesh, logical_to_spec(axes[k], v.shape, mesh)) for k, v in factors.items()}
    return out


def make_lora_optimizer(cfg: LoraTrainConfig) -> optax.GradientTransformation:
    """AdamW with linear warm-up and a constant rate after (DiffSynth's LoRA recipe), or with `cfg.anneal` the
    full training's cosine decay to lr / 10 at `train.steps`; global-norm clipping."""
    train = cfg.train
    schedule = warmup_cosine(train) if cfg.anneal else optax.linear_schedule(0.0, train.lr, max(train.warmup, 1))
    return optax.chain(optax.clip_by_global_norm(train.clip), optax.adamw(schedule, weight_decay=train.weight_decay))


def init_lora_state(dit: DiTConfig, cfg: LoraTrainConfig, init: LoraParams | None = None, place=None) -> LoraState:
    """Step 0 with fresh factors (PEFT init), or with `init` (a warm start from a trained LoRA); `place`
    (factors -> placed factors, e.g. split like their kernels) runs before the optimizer state is made, so
    that state lands where the factors are."""
    u_range(cfg.sigma_range, cfg.train.shift)  # refuse an empty range before anything runs
    key = jax.random.key(cfg.train.seed)
    lora = init_lora(dit, cfg.lora, jax.random.fold_in(key, 1)) if init is None else init
    lora = lora if place is None else place(lora)
    opt_state = make_lora_optimizer(cfg).init(lora)
    return LoraState(jnp.zeros((), jnp.int32), lora, opt_state, jax.random.key_data(key))


def _lora_update(cfg: LoraTrainConfig, state: LoraState, loss_of) -> tuple[LoraState, dict]:
    """Differentiate `loss_of(lora)` in the factors only and apply one AdamW update."""
    loss, grads = jax.value_and_grad(loss_of)(state.lora)
    updates, opt_state = make_lora_optimizer(cfg).update(grads, state.opt_state, state.lora)
    lora = optax.apply_updates(state.lora, updates)
    return LoraState(state.step + 1, lora, opt_state, state.key), {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def lora_train_step(graphdef, params, spec, cfg: LoraTrainConfig, state: LoraState, data: dict, prompts: dict):
    """One optimizer step of the LoRA on a batch drawn from `data`; `graphdef`/`params` are the frozen
    toy model (`nnx.split(model, nnx.Param)`). Returns (state, metrics)."""
    batch, k_loss = draw_batch(cfg.train, state.key, state.step, data)
    model = nnx.merge(graphdef, params)
    bounds = u_range(cfg.sigma_range, cfg.train.shift)

    def loss_of(lora):
        return flow_loss(model, spec, cfg.train, batch, prompts, k_loss, u_range=bounds, lora=lora,
                         lora_scale=cfg.lora.scale)  # fmt: skip

    return _lora_update(cfg, state, loss_of)


def latent_lora_step(graphdef, params, cfg: LoraTrainConfig, state: LoraState, data: dict):
    """One optimizer step of a LoRA on a frozen Wan DiT (`nnx.split(dit, nnx.Param)`) from latent samples
    {x0, y, context} (`train.vbvr_data.encode_samples`), on the σ range of `cfg`. Returns (state, metrics)."""
    batch, k_loss = draw_batch(cfg.train, state.key, state.step, data, keys=("x0", "y", "context"))
    dit = nnx.merge(graphdef, params)
    bounds = u_range(cfg.sigma_range, cfg.train.shift)
    k_sigma, k_eps = jax.random.split(k_loss)

    def loss_of(lora):
        return velocity_loss(dit, cfg.train, batch["x0"], batch["y"], batch["context"], k_sigma, k_eps,
                             u_range=bounds, lora=lora, lora_scale=cfg.lora.scale)  # fmt: skip

    return _lora_update(cfg, state, loss_of)


def diffsynth_tensors(lora: LoraParams, scale: float) -> dict[str, np.ndarray]:
    """The LoRA as DiffSynth-Studio saves one: `blocks.N.<target>.lora_A.default.weight` [r, in] and
    `…lora_B.default.weight` [out, r] (float32), with `scale` folded into B so it merges at scale 1."""
    tensors = {}
    for target, factors in lora.items():
        down, up = np.asarray(factors["down"], np.float32), np.asarray(factors["up"], np.float32)
        for i in range(down.shape[0]):
            tensors[f"blocks.{i}.{target}.lora_A.default.weight"] = np.ascontiguousarray(down[i].T)
            tensors[f"blocks.{i}.{target}.lora_B.default.weight"] = np.ascontiguousarray(scale * up[i].T)
    return tensors


def read_lora(path: str | os.PathLike, dit: DiTConfig, lora: LoraConfig) -> LoraParams:
    """The factors of a LoRA file for a warm start, parsed and checked as `cos-jax convert --lora` reads one
    (`convert.lora.load_lora`: DiffSynth/PEFT/diffusers names, alpha), with B divided by `lora.scale`; a
    file of another rank or without one of the targets is a UsageError."""
    from cos_jax.convert.lora import load_lora

    parsed = load_lora(path, dit)
    if parsed.ranks != [lora.rank]:
        raise UsageError(f"{path}: rank {parsed.ranks[0]}, not {lora.rank}; pass --rank {parsed.ranks[0]}")
    params = {}
    for target in lora.targets:
        layers = [parsed.factors(kernel_path(target), i) for i in range(dit.num_layers)]
        if any(f is None for f in layers):
            raise UsageError(f"{path}: no LoRA for every block's {target}; warm-start from a LoRA of this model")
        params[target] = {"down": jnp.asarray(np.stack([d for d, _ in layers]), F32),
                          "up": jnp.asarray(np.stack([u for _, u in layers]) / lora.scale, F32)}  # fmt: skip
    return params


def save_lora(path: str | os.PathLike, lora: LoraParams, scale: float, metadata: dict[str, str] | None = None) -> Path:
    """Write the LoRA as a DiffSynth-format .safetensors, atomically (temp file, then rename)."""
    from safetensors.numpy import save_file

    tensors = diffsynth_tensors(lora, scale)
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def train_lora(
    spec,
    cfg: LoraTrainConfig,
    data: dict[str, np.ndarray],
    out: str | os.PathLike,
    *,
    base_weights: str | os.PathLike,
    time_budget_s: float | None = None,
    checkpoint_every: int = 500,
    log_every: int = 50,
    init: str | os.PathLike | None = None,
) -> dict:
    """Train a LoRA on the toy world loaded from `base_weights` (its EMA) until `cfg.train.steps` or the
    time budget; resumable from `out/state`; `init` warm-starts from a LoRA file. Writes
    `out/lora.safetensors` (DiffSynth naming), the log and the summary. The frozen base is a constant of
    the compiled step (fine at toy size)."""
    from cos_jax.train.checkpoint import load_weights
    from cos_jax.train.run import data_parallel, run_steps, train_flops_per_sample
    from cos_jax.wan.toy import init_toy

    out = Path(out)
    model = load_weights(base_weights, "ema", init_toy(spec))
    graphdef, params = nnx.split(model, nnx.Param)
    state = init_lora_state(spec.dit, cfg, None if init is None else read_lora(init, spec.dit, cfg.lora))
    info = {"rank": str(cfg.lora.rank), "scale": str(cfg.lora.scale), "sigma_range": json.dumps(cfg.sigma_range),
            "targets": ",".join(cfg.lora.targets), "base": os.path.basename(os.fspath(base_weights)),
            **({"init": os.path.basename(os.fspath(init))} if init is not None else {})}  # fmt: skip

    def save(state: LoraState) -> None:
        save_lora(out / "lora.safetensors", state.lora, cfg.lora.scale, {**info, "step": str(int(state.step))})

    step = partial(lora_train_step, graphdef, params, spec, cfg)
    mesh, state, inputs = data_parallel(state, data)
    return run_steps(step, state, inputs, out, mesh=mesh, flops_per_sample=train_flops_per_sample(spec),
                     cfg=cfg.train, save=save, time_budget_s=time_budget_s, checkpoint_every=checkpoint_every,
                     log_every=log_every)  # fmt: skip
