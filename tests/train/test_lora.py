"""LoRA on the DiT and its training: a fresh LoRA changes nothing, the in-scan merge equals merged kernels,
only the factors are trained, a saved LoRA merged by `cos-jax convert` equals the in-memory one, training
lowers the loss on a tiny task, and bad settings get one clear line."""

from functools import partial

import ckpt_writers as cw
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cos_jax
from cos_jax.convert import reference
from cos_jax.convert.convert import convert_checkpoint
from cos_jax.convert.parity import PARITY_CASES, cos_forward
from cos_jax.errors import UsageError
from cos_jax.train.flow import TrainConfig
from cos_jax.train.lora import (
    LoraTrainConfig,
    init_lora_state,
    lora_train_step,
    make_lora_optimizer,
    read_lora,
    save_lora,
    u_range,
)
from cos_jax.wan.dit import init_dit
from cos_jax.wan.lora import TARGETS, LoraConfig, init_lora
from cos_jax.wan.toy import init_toy

from .test_train import SPEC, data  # noqa: F401  (the tiny toy spec and its moving-square fixture)

CASE = PARITY_CASES[1]  # i2v, 2 layers, dim 48


def _random_lora(cfg, rank=4, seed=0, targets=tuple(TARGETS)):
    """A LoRA whose `up` is random too (a fresh one has up = 0)."""
    lora = init_lora(cfg, LoraConfig(rank=rank, targets=targets), jax.random.key(seed))
    keys = jax.random.split(jax.random.key(seed + 1), len(lora))
    return {
        t: {**f, "up": 0.05 * jax.random.normal(k, f["up"].shape)} for (t, f), k in zip(lora.items(), keys, strict=True)
    }


def test_fresh_lora_leaves_the_output_bit_identical():
    model = init_dit(CASE.config, seed=3)
    inputs = reference.random_inputs(CASE.config, 1, CASE.latent, seed=1)
    lora = init_lora(CASE.config, LoraConfig(rank=4), jax.random.key(0))
    assert np.array_equal(cos_forward(model, inputs), cos_forward(model, inputs, lora=lora))


def test_in_scan_lora_equals_merged_kernels():
    cfg = CASE.config
    model = init_dit(cfg, seed=3)
    inputs = reference.random_inputs(cfg, 1, CASE.latent, seed=1)
    lora, scale = _random_lora(cfg, targets=("self_attn.q", "cross_attn.v", "ffn.0")), 0.5
    with_adapter = cos_forward(model, inputs, lora=lora, lora_scale=scale)
    graphdef, state = nnx.split(model)
    for target, f in lora.items():
        node = state["blocks"]
        for name in TARGETS[target]:
            node = node[name]
        delta = np.einsum("lir,lro->lio", np.asarray(f["down"]), np.asarray(f["up"]))
        node["kernel"] = node["kernel"].replace(node["kernel"][...] + scale * delta)
    merged = cos_forward(nnx.merge(graphdef, state), inputs)
    np.testing.assert_allclose(with_adapter, merged, rtol=1e-5, atol=1e-5 * np.abs(merged).max())
    assert not np.allclose(with_adapter, cos_forward(model, inputs), atol=1e-3)  # the LoRA does something


def _lora_step(graphdef, spec, cfg, params, state, samples, prompts):
    return lora_train_step(graphdef, params, spec, cfg, state, samples, prompts)


_LORA_STEP = jax.jit(_lora_step, static_argnums=(0, 1, 2))  # one compilation shared by the tests


def _lora_steps(data, steps, cfg):  # noqa: F811
    (samples, prompts), model = data, init_toy(SPEC, seed=0)
    graphdef, params = nnx.split(model, nnx.Param)
    state = init_lora_state(SPEC.dit, cfg)
    step = partial(_LORA_STEP, graphdef, SPEC, cfg, params)
    losses = []
    for _ in range(steps):
        state, metrics = step(state, samples, prompts)
        losses.append(float(metrics["loss"]))
    return params, state, losses


LORA_CFG = LoraTrainConfig(TrainConfig(batch=4, lr=1e-2, warmup=1, weight_decay=0.0, policy="fp32"),
                           LoraConfig(rank=4), (0.0, 1.0))  # fmt: skip


def test_only_the_lora_factors_are_trained(data):  # noqa: F811
    params, state, _ = _lora_steps(data, 2, LORA_CFG)
    lora_sizes = sum(x.size for x in jax.tree.leaves(state.lora))
    opt_sizes = sum(x.size for x in jax.tree.leaves(state.opt_state) if x.ndim)  # adam: mu and nu per factor
    assert opt_sizes == 2 * lora_sizes
    assert all(np.abs(np.asarray(f["up"])).max() > 0 for f in state.lora.values())  # up left zero: trained
    base = nnx.split(init_toy(SPEC, seed=0), nnx.Param)[1]
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params, base))


def test_training_lowers_the_loss(data):  # noqa: F811
    _, _, losses = _lora_steps(data, 40, LORA_CFG)
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8]), losses


def test_saved_lora_merged_by_convert_equals_the_in_memory_one(tmp_path):
    cfg = CASE.config
    cw.write_official_sharded(str(tmp_path / "src"), reference.random_reference_dit(cfg, seed=7), cfg)
    lora, scale = _random_lora(cfg, seed=5), 0.25
    save_lora(tmp_path / "lora.safetensors", lora, scale)
    convert_checkpoint(tmp_path / "src", tmp_path / "base", dtype="fp32", progress=False)
    convert_checkpoint(tmp_path / "src", tmp_path / "merged", dtype="fp32", lora=str(tmp_path / "lora.safetensors"),
                       progress=False)  # fmt: skip
    inputs = reference.random_inputs(cfg, 1, CASE.latent, seed=2)
    in_memory = cos_forward(cos_jax.load(tmp_path / "base").dit, inputs, lora=lora, lora_scale=scale)
    merged = cos_forward(cos_jax.load(tmp_path / "merged").dit, inputs)
    np.testing.assert_allclose(merged, in_memory, rtol=1e-5, atol=1e-5 * np.abs(merged).max())


def test_a_saved_lora_reads_back_for_a_warm_start(tmp_path):
    cfg, lora_cfg = CASE.config, LoraConfig(rank=4, alpha=2.0)
    lora = _random_lora(cfg, seed=3)
    save_lora(tmp_path / "lora.safetensors", lora, lora_cfg.scale)
    back = read_lora(tmp_path / "lora.safetensors", cfg, lora_cfg)
    for target, factors in lora.items():
        for name in ("down", "up"):
            np.testing.assert_allclose(back[target][name], factors[name], rtol=1e-6, atol=1e-7)
    with pytest.raises(UsageError, match="rank 4, not 8; pass --rank 4"):
        read_lora(tmp_path / "lora.safetensors", cfg, LoraConfig(rank=8))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LoraConfig(rank=0).check(), "LoRA rank 0: needs an integer ≥ 1"),
        (lambda: LoraConfig(targets=("self_attn.q", "attn1.to_q")).check(), "LoRA targets ['attn1.to_q']"),
        (lambda: u_range((0.9, 0.9), 5.0), "σ range [0.9, 0.9] is empty"),
        (lambda: u_range((0.5, 1.2), 5.0), "outside [0, 1]"),
    ],
)
def test_bad_lora_settings(make, message):
    with pytest.raises(UsageError) as err:
        make()
    assert message in str(err.value)


def test_anneal_decays_the_rate_to_a_tenth_at_the_last_step():
    """Adam's steady update under a constant gradient is the rate itself: with `anneal` it ends at lr / 10,
    without it stays at lr."""
    cfg = TrainConfig(lr=1e-3, warmup=2, steps=20, clip=1e9, weight_decay=0.0)
    params = {"w": jnp.zeros(3)}
    grads = {"w": jnp.ones(3)}

    def last_update(anneal):
        opt = make_lora_optimizer(LoraTrainConfig(cfg, anneal=anneal))
        state = opt.init(params)
        for _ in range(cfg.steps + 1):
            updates, state = opt.update(grads, state, params)
        return float(jnp.abs(updates["w"]).max())

    np.testing.assert_allclose(last_update(False), 1e-3, rtol=1e-3)
    np.testing.assert_allclose(last_update(True), 1e-4, rtol=1e-3)


def test_sigma_range_maps_through_the_shift():
    lo, hi = u_range((0.9, 1.0), 5.0)
    sigma = lambda u: 5.0 * u / (1 + 4.0 * u)
    assert (sigma(lo), sigma(hi)) == pytest.approx((0.9, 1.0))
