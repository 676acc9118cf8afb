"""The toy trainer on CPU: a few steps reduce the loss; save → resume continues bit-identically;
the weights file round-trips."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cos_jax.train.checkpoint import load_weights, read_meta, restore_state, save_state, save_weights, total_steps
from cos_jax.train.data import prompt_table
from cos_jax.train.flow import TrainConfig, init_state, train_step
from cos_jax.wan.config import DiTConfig
from cos_jax.wan.t5 import T5Config
from cos_jax.wan.toy import ToySpec, init_toy

SPEC = ToySpec(
    dit=DiTConfig(
        "i2v", dim=32, ffn_dim=64, num_heads=2, num_layers=2, in_dim=100, out_dim=48, text_dim=32, text_len=32
    ),
    text=T5Config(vocab_size=259, dim=32, head_dim=16, num_heads=2, ffn_dim=48, num_layers=1),
    resolution=16,
    frames=9,
)
CFG = TrainConfig(batch=4, steps=100, lr=3e-3, warmup=1, policy="fp32")


@pytest.fixture(scope="module")
def data():
    video = np.full((6, 9, 16, 16, 3), 255, np.uint8)
    for i in range(6):  # a square that moves right, the same task with different starts
        for t in range(9):
            x = (i + t) % 12
            video[i, t, 6:10, x : x + 4] = (200, 30, 30)
    table, prompt = prompt_table(["move the red square right", "move the square"] * 3, SPEC.dit.text_len)
    return {"video": jnp.asarray(video), "prompt": jnp.asarray(prompt)}, jax.tree.map(jnp.asarray, table)


_STEP = jax.jit(train_step, static_argnums=(0, 1, 2))  # one compilation shared by the tests


def _run(graphdef, state, data, steps):
    data, prompts = data
    step = partial(_STEP, graphdef, SPEC, CFG)
    losses = []
    for _ in range(steps):
        state, metrics = step(state, data, prompts)
        losses.append(float(metrics["loss"]))
    return state, losses


def test_steps_reduce_the_loss(data):
    graphdef, state = init_state(init_toy(SPEC), CFG)
    _, losses = _run(graphdef, state, data, 30)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_save_and_resume_is_bit_identical(tmp_path, data):
    graphdef, state = init_state(init_toy(SPEC), CFG)
    straight, _ = _run(graphdef, state, data, 4)
    graphdef, state = init_state(init_toy(SPEC), CFG)
    half, _ = _run(graphdef, state, data, 2)
    save_state(tmp_path / "state", half)
    _, template = init_state(init_toy(SPEC, seed=9), CFG)  # different values, same structure
    resumed, _ = _run(graphdef, restore_state(tmp_path / "state", template), data, 2)
    assert int(resumed.step) == 4
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(straight), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_weights_file_round_trip(tmp_path):
    model = init_toy(SPEC, seed=1)
    path = save_weights(tmp_path / "w.npz", {"ema": nnx.state(model, nnx.Param)}, {"step": 7})
    fresh = load_weights(path, "ema", init_toy(SPEC, seed=2))
    for a, b in zip(jax.tree.leaves(nnx.state(fresh)), jax.tree.leaves(nnx.state(model)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(jnp.asarray(b, jnp.bfloat16).astype(jnp.float32)))
    assert read_meta(path)["step"] == 7
    assert total_steps(path) == 7  # no runs before it recorded: its own step
    tree = {"ema": nnx.state(model, nnx.Param)}
    assert total_steps(save_weights(tmp_path / "c.npz", tree, {"step": 7, "total_steps": 107})) == 107
    with pytest.raises(KeyError, match="does not fit the model"):
        load_weights(path, "params", init_toy(SPEC))


def test_prompt_table_dedupes_and_reserves_the_empty_row():
    table, index = prompt_table(["b", "a", "b", ""], 8)
    assert index.tolist() == [1, 2, 1, 0]
    ids, mask = SPEC.tokenizer(["", "b", "a"])
    np.testing.assert_array_equal(table["prompt_ids"], ids[:, :8])
    np.testing.assert_array_equal(table["prompt_mask"], mask[:, :8])


def test_remat_and_unroll_leave_the_gradient_unchanged(data):
    import dataclasses

    from cos_jax.train.flow import flow_loss

    batch, prompts = data
    batch = {k: v[:3] for k, v in batch.items()}
    graphdef, state = init_state(init_toy(SPEC), CFG)

    def grads(cfg):
        loss = lambda p: flow_loss(nnx.merge(graphdef, p), SPEC, cfg, batch, prompts, jax.random.key(1))
        return jax.jit(jax.grad(loss))(state.params)

    reference = jax.tree.leaves(grads(CFG))  # computed once for both variants
    for remat, unroll in (("dots", 1), ("full", 2)):
        fast = dataclasses.replace(CFG, remat=remat, scan_unroll=unroll)
        for a, b in zip(jax.tree.leaves(grads(fast)), reference, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6, err_msg=remat)
    with pytest.raises(ValueError, match="unknown remat policy"):
        grads(dataclasses.replace(CFG, remat="some"))
