"""The two-expert toy: each expert is the toy with its own LoRA merged, and it samples with a switch."""

from __future__ import annotations

import numpy as np

import cos_jax
from cos_jax.convert import reference
from cos_jax.convert.parity import cos_forward
from cos_jax.pipelines.toy import load_toy, toy_sampling
from cos_jax.train.lora import save_lora

from .test_lora import _random_lora


def test_toy_a14b_experts_are_the_toy_with_each_lora_merged(tmp_path):
    base, spec = load_toy()
    cfg = spec.dit
    loras = [_random_lora(cfg, rank=2, seed=s, targets=("self_attn.q", "cross_attn.o", "ffn.2")) for s in (1, 3)]
    paths = []
    for name, lora in zip(("high", "low"), loras, strict=True):
        paths.append(str(save_lora(tmp_path / f"{name}.safetensors", lora, 0.5)))
    pair, pair_spec = cos_jax.load("toy-a14b", loras=tuple(paths))
    assert pair_spec == spec and len(pair.dit) == 2
    inputs = reference.random_inputs(cfg, 1, spec.latent_shape[:3], text_tokens=cfg.text_len, seed=4)
    for expert, lora in zip(pair.dit, loras, strict=True):
        in_scan = cos_forward(base.dit, inputs, lora=lora, lora_scale=0.5)
        np.testing.assert_allclose(cos_forward(expert, inputs), in_scan, rtol=1e-4, atol=1e-4 * np.abs(in_scan).max())
    high, low = (cos_forward(e, inputs) for e in pair.dit)
    assert not np.allclose(high, low, atol=1e-3)


def test_toy_a14b_samples_with_the_paper_switch():
    config = toy_sampling(two_experts=True)
    assert config.boundary == 875 and config.switch_step() == 21
    assert toy_sampling().boundary is None


def test_the_shipped_pair_loads_and_differs_from_the_toy():
    base, spec = load_toy()
    pair, _ = cos_jax.load("toy-a14b")
    inputs = reference.random_inputs(spec.dit, 1, spec.latent_shape[:3], text_tokens=spec.dit.text_len, seed=5)
    single = cos_forward(base.dit, inputs)
    high, low = (cos_forward(e, inputs) for e in pair.dit)
    for out in (high, low):
        assert np.isfinite(out).all() and not np.allclose(out, single, atol=1e-4)
    assert not np.allclose(high, low, atol=1e-4)


def test_a_given_lora_pair_is_named_by_file_and_content_not_by_path(tmp_path):
    from cos_jax.pipelines.toy import lora_pair_label

    high, low = tmp_path / "run_a" / "high.safetensors", tmp_path / "low.safetensors"
    high.parent.mkdir()
    high.write_bytes(b"high weights")
    low.write_bytes(b"low weights")
    label = lora_pair_label((str(high), str(low)))
    assert label.startswith("given: high.safetensors, low.safetensors (sha256:") and str(tmp_path) not in label
    low.write_bytes(b"other low weights")
    assert lora_pair_label((str(high), str(low))) != label
    assert lora_pair_label(None).startswith("shipped (sha256:")
