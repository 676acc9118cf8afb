"""VBVR-format sample folders → the latent training set through a pipeline's VAE and umT5 → LoRA steps
on an expert; a sample folder missing prompt.txt gets one clear line."""

import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cos_jax.errors import UsageError
from cos_jax.pipelines.components import load_components
from cos_jax.tasks import get_task
from cos_jax.tasks.bench import write_sample
from cos_jax.train.flow import TrainConfig, velocity_loss
from cos_jax.train.lora import LoraTrainConfig, init_lora_state, latent_lora_step
from cos_jax.train.vbvr_data import encode_samples, sample_folders
from cos_jax.wan.lora import LoraConfig


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    pytest.importorskip("diffusers")
    from cos_jax.pipelines.wan_reference import build_tiny_pipeline

    folder = tmp_path_factory.mktemp("i2v") / "i2v-a14b"
    build_tiny_pipeline(folder, "i2v-a14b")
    return load_components(folder)


def _samples(root, n=2):
    task = get_task("maze")
    for i in range(n):
        write_sample(root / "maze" / f"{i:05d}", task.generate_for_split("train", i, 1, 32, 9))


def test_sample_folders_encode_and_train_a_lora(components, tmp_path):
    _samples(tmp_path / "data")
    data = encode_samples(components, tmp_path / "data", progress=False)
    n, f = data["x0"].shape[:2]
    assert (n, f) == (2, 3) and data["context"].shape == (2, components.text_len, components.dit_config.text_dim)
    stride = components.vae_config.temporal_stride
    np.testing.assert_array_equal(data["y"][:, 0, ..., :stride], 1.0)
    np.testing.assert_array_equal(data["y"][:, 1:, ..., :stride], 0.0)
    # the causal VAE encodes latent frame 0 from the first frame alone: y's image latent equals x0 there
    np.testing.assert_allclose(data["y"][:, 0, ..., stride:], data["x0"][:, 0], atol=1e-4)

    cfg = LoraTrainConfig(TrainConfig(batch=2, lr=1e-2, warmup=1, weight_decay=0.0), LoraConfig(rank=4), (0.0, 1.0))
    graphdef, params = nnx.split(components.experts[1], nnx.Param)
    dev = {k: jnp.asarray(v) for k, v in data.items()}
    k_sigma, k_eps = jax.random.split(jax.random.key(3))

    @jax.jit
    def fixed_loss(lora):
        dit = nnx.merge(graphdef, params)
        return velocity_loss(dit, cfg.train, dev["x0"], dev["y"], dev["context"], k_sigma, k_eps, lora=lora)

    state = init_lora_state(components.dit_config, cfg)
    before = fixed_loss(state.lora)
    step = jax.jit(partial(latent_lora_step, graphdef, params, cfg))
    for _ in range(30):
        state, metrics = step(state, dev)
    assert np.isfinite(metrics["loss"]) and float(fixed_loss(state.lora)) < 0.95 * float(before)


def test_a_sample_folder_without_prompt_txt_is_refused(tmp_path):
    _samples(tmp_path / "data", n=1)
    (tmp_path / "data" / "maze" / "00000" / "prompt.txt").unlink()
    with pytest.raises(UsageError, match=r"maze.00000 has no prompt.txt; a VBVR sample holds first_frame.png"):
        sample_folders(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no sample folders under"):
        sample_folders(tmp_path / "empty")


def test_the_lora_step_runs_fsdp_sharded_like_on_one_device(components, tmp_path):
    """Over 8 (fake CPU) devices, base and LoRA factors split by the mesh rules, batch over fsdp: the same
    losses and factors as unsharded."""
    from cos_jax.parallel import make_mesh, shard_model
    from cos_jax.train.lora import lora_shardings

    _samples(tmp_path / "data")
    data = {k: jnp.asarray(v) for k, v in encode_samples(components, tmp_path / "data", progress=False).items()}
    cfg = LoraTrainConfig(TrainConfig(batch=8, lr=1e-2, warmup=1, weight_decay=0.0), LoraConfig(rank=4), (0.0, 0.875))
    expert = components.experts[0]
    step = jax.jit(latent_lora_step, static_argnums=(0, 2))

    def run(model, state):
        graphdef, params = nnx.split(model, nnx.Param)
        metrics = []
        for _ in range(2):
            state, m = step(graphdef, params, cfg, state, data)
            metrics.append([float(m["loss"]), float(m["grad_norm"])])  # [loss, grad norm] per step
        return metrics, state.lora

    state = init_lora_state(components.dit_config, cfg)
    single = run(expert, state)
    mesh = make_mesh("fsdp=8")
    lora = jax.device_put(state.lora, lora_shardings(expert, state.lora, mesh))
    # like their kernels: q is [embed → heads] (fsdp, tensor = 1), o is [heads → embed]
    assert lora["self_attn.q"]["down"].sharding.spec[1] == "fsdp"
    assert lora["self_attn.q"]["up"].sharding.spec[2] is None
    assert lora["cross_attn.o"]["down"].sharding.spec[1] is None
    assert lora["cross_attn.o"]["up"].sharding.spec[2] == "fsdp"
    with jax.set_mesh(mesh):
        sharded = run(shard_model(expert, mesh), init_lora_state(components.dit_config, cfg, init=lora))
    np.testing.assert_allclose(sharded[0], single[0], rtol=5e-4)
    # Adam divides by √v, so where a gradient is ~0 the summation order moves that update by a fraction of
    # lr; the factors agree on average to 1 % of a step and everywhere to 20 %
    for a, b in zip(jax.tree.leaves(sharded[1]), jax.tree.leaves(single[1]), strict=True):
        diff = np.abs(np.asarray(a) - np.asarray(b))
        assert diff.mean() < 0.01 * cfg.train.lr and diff.max() < 0.2 * cfg.train.lr


def test_train_lora_command_trains_resumes_and_writes_a_lora_convert_reads(tmp_path, capsys):
    """`cos-jax train-lora` end to end on a tiny I2V-A14B folder, FSDP over the 8 CPU devices: 3 steps, then a
    rerun to 6 resumes (and reuses the latent cache) and ends where 6 uninterrupted steps end; the LoRA file
    is read by convert's parser with the low expert's σ range in its metadata."""
    pytest.importorskip("diffusers")
    from safetensors import safe_open

    from cos_jax.cli import main
    from cos_jax.convert.lora import load_lora
    from cos_jax.pipelines.wan_reference import build_tiny_pipeline

    folder = tmp_path / "i2v-a14b"
    build_tiny_pipeline(folder, "i2v-a14b")
    _samples(tmp_path / "data")

    def train(out, steps):
        args = ["train-lora", str(folder), str(tmp_path / "data"), "--out", str(out), "--expert", "low", "--rank",
                "4", "--batch", "8", "--lr", "1e-2", "--warmup", "1", "--policy", "fp32", "--param-dtype", "fp32",
                "--remat", "none", "--log-every", "1", "--checkpoint-every", "3", "--steps", str(steps)]  # fmt: skip
        assert main(args) == 0
        return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]

    train(tmp_path / "a", 3)
    cache = (tmp_path / "a" / "latents.npz").stat().st_mtime_ns
    resumed = train(tmp_path / "a", 6)
    assert "resumed from" in capsys.readouterr().out and (tmp_path / "a" / "latents.npz").stat().st_mtime_ns == cache
    straight = train(tmp_path / "b", 6)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([r["loss"] for r in resumed], [r["loss"] for r in straight], rtol=1e-5)
    lora = load_lora(tmp_path / "a" / "lora.safetensors", load_components(folder).dit_config)
    assert lora.ranks == [4]
    with safe_open(tmp_path / "a" / "lora.safetensors", "np") as f:
        meta = f.metadata()
    assert meta["expert"] == "low" and meta["step"] == "6" and json.loads(meta["sigma_range"])[0] == 0.0


def test_train_lora_command_refuses_bad_inputs_in_one_line(tmp_path, capsys):
    pytest.importorskip("diffusers")
    from cos_jax.cli import main
    from cos_jax.pipelines.wan_reference import build_tiny_pipeline

    folder = tmp_path / "i2v-a14b"
    build_tiny_pipeline(folder, "i2v-a14b")
    _samples(tmp_path / "data", n=1)
    base = ["train-lora", str(folder), str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--steps", "1"]
    assert main([*base, "--expert", "single"]) == 2
    assert "has expert(s) high, low, not 'single'" in capsys.readouterr().err
    assert main([*base, "--expert", "high", "--rank", "0"]) == 2
    assert "LoRA rank 0" in capsys.readouterr().err
    assert main([*base, "--expert", "high", "--sigma", "0.9"]) == 2
    assert "--sigma '0.9': give LO,HI" in capsys.readouterr().err
    assert main([*base, "--expert", "high", "--sigma", "0.9,0.5"]) == 2
    assert "σ range [0.9, 0.5] is empty" in capsys.readouterr().err
    assert not (tmp_path / "run" / "latents.npz").exists()  # refused before encoding anything
