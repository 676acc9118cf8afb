"""Wan VAEs: parity with diffusers' AutoencoderKLWan (random weights, fp32, CPU), chunked == full-sequence,
key tables, full-size parameter counts and input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cos_jax.convert import vae_keys
from cos_jax.convert.dit_keys import KeyMismatchError
from cos_jax.wan.vae import (
    VAEConfig,
    abstract_vae,
    count_params,
    decode_many,
    vae_decode,
    vae_encode,
    vae_preset,
    with_conv_precision,
)

pytest.importorskip("diffusers")
from cos_jax.convert import vae_reference

TOLERANCE = 1e-5  # max|Δ| / max|ref|
FRAMES = 9  # frame 0 + two 4-frame chunks: the scans run two steps, so caches are carried twice
SMALL = {"wan21": vae_preset("wan21").small(8), "wan22": vae_preset("wan22").small(8, 16)}


def _random_weights(cfg: VAEConfig, seed: int) -> dict[str, np.ndarray]:
    """Diffusers-named random weights of the right shapes (no model initialisation, which is slow eagerly)."""
    rng = np.random.default_rng(seed)
    shapes = nnx.to_pure_dict(nnx.state(abstract_vae(cfg), nnx.Param))
    flat = {}

    def visit(tree, prefix):
        for key, value in tree.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                visit(value, name + ".")
            else:
                flat[name] = rng.normal(size=value.shape).astype(np.float32) * 0.1

    visit(shapes, "")
    return vae_keys.from_cos_params(flat, cfg, "diffusers")


def _relative(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module", params=sorted(SMALL))
def pair(request):
    """(config, diffusers reference, cos-jax model with the same weights, a random video, random latents)."""
    cfg = SMALL[request.param]
    ref = vae_reference.random_reference_vae(cfg, seed=0)
    weights = {k: v.numpy() for k, v in ref.state_dict().items()}
    model = vae_keys.vae_from_state_dict(weights, cfg)
    rng = np.random.default_rng(1)
    size = 2 * cfg.spatial_stride
    video = rng.uniform(-1, 1, (1, 3, FRAMES, size, size)).astype(np.float32)
    latents = rng.normal(size=(1, cfg.z_dim, cfg.latent_frames(FRAMES), 2, 2)).astype(np.float32)
    return cfg, ref, model, video, latents


def _to_jax(x: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(x.transpose(0, 2, 3, 4, 1))


def _to_torch_layout(x) -> np.ndarray:
    return np.asarray(x).transpose(0, 4, 1, 2, 3)


def test_encode_matches_diffusers(pair):
    cfg, ref, model, video, _ = pair
    expected = vae_reference.reference_encode(ref, cfg, video)
    ours = _to_torch_layout(vae_encode(model, _to_jax(video), True))
    assert ours.shape == expected.shape == (1, cfg.z_dim, 3, 2, 2)
    assert _relative(ours, expected) <= TOLERANCE


def test_decode_matches_diffusers(pair):
    cfg, ref, model, _, latents = pair
    expected = vae_reference.reference_decode(ref, cfg, latents)
    assert np.mean(np.abs(expected) < 1) > 0.5, "most reference pixels are clamped; the test would be weak"
    ours = _to_torch_layout(vae_decode(model, _to_jax(latents), True))
    assert ours.shape == expected.shape == (1, 3, FRAMES, 2 * cfg.spatial_stride, 2 * cfg.spatial_stride)
    assert _relative(ours, expected) <= TOLERANCE


def test_chunked_equals_full_sequence(pair):
    _, _, model, video, latents = pair
    chunked = vae_decode(model, _to_jax(latents), True)
    full = vae_decode(model, _to_jax(latents), False)
    assert _relative(np.asarray(chunked), np.asarray(full)) <= TOLERANCE
    chunked = vae_encode(model, _to_jax(video), True)
    full = vae_encode(model, _to_jax(video), False)
    assert _relative(np.asarray(chunked), np.asarray(full)) <= TOLERANCE


@pytest.mark.parametrize("name", sorted(SMALL))
def test_float64_agreement_is_exact(name, monkeypatch):
    """In float64 both implementations agree to rounding (≤1e-12), so the float32 gaps above are rounding too.

    diffusers rounds to float32 around nearest upsampling even in float64; that cast is removed here.
    """
    vae_reference.exact_upsampling(monkeypatch)
    cfg = SMALL[name]
    ref = vae_reference.random_reference_vae(cfg, seed=7).double()
    weights = {k: v.numpy() for k, v in ref.state_dict().items()}
    rng = np.random.default_rng(2)
    video = rng.uniform(-1, 1, (1, 3, 5, cfg.spatial_stride, cfg.spatial_stride))
    latents = rng.normal(size=(1, cfg.z_dim, 2, 1, 1))
    with jax.enable_x64(True):
        model = vae_keys.vae_from_state_dict(weights, cfg, param_dtype=jnp.float64)
        z = _to_torch_layout(vae_encode(model, _to_jax(video), True))
        x = _to_torch_layout(vae_decode(model, _to_jax(latents), True))
    assert z.dtype == x.dtype == np.float64
    assert _relative(z, vae_reference.reference_encode(ref, cfg, video)) <= 1e-12
    assert _relative(x, vae_reference.reference_decode(ref, cfg, latents)) <= 1e-12


def test_single_frame_shapes_and_batched_decoding():
    """One frame (no scan step) at a non-square size and batch 2; `decode_many` pads and batches."""
    cfg = SMALL["wan21"]
    model = vae_keys.vae_from_state_dict(_random_weights(cfg, 0), cfg)
    images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (3, 1, 16, 32, 3)), jnp.float32)
    z = vae_encode(model, images[:2], True)
    assert z.shape == (2, 1, 2, 4, 16)
    pairs = vae_decode(model, z, True)
    assert pairs.shape == (2, 1, 16, 32, 3)
    z3 = jnp.concatenate([z, z[:1] * 0.5])
    many = decode_many(model, z3, batch_size=2)
    assert many.shape == (3, 1, 16, 32, 3)
    np.testing.assert_allclose(many[:2], np.asarray(pairs), atol=1e-6)
    half = np.asarray(vae_decode(model, jnp.concatenate([z3[2:], z3[2:]]), True))  # same shape: no new compile
    np.testing.assert_allclose(many[2:], half[:1], atol=1e-6)


def test_tf32_switch_reaches_every_conv():
    """`with_conv_precision(vae, "tf32")` leaves no float32-forced conv or matmul in the program (the
    lowered StableHLO carries no HIGHEST precision); on CPU the values do not change."""
    from cos_jax.pipelines.components import load_components

    cfg = SMALL["wan21"]
    model = vae_keys.vae_from_state_dict(_random_weights(cfg, 0), cfg)
    z = jnp.asarray(np.random.default_rng(1).standard_normal((1, 2, 2, 2, 16)), jnp.float32)
    highest = lambda m: jax.jit(lambda m, z: m.decode(z)).lower(m, z).as_text().count("HIGHEST")
    before, forced = np.asarray(vae_decode(model, z)), highest(model)
    assert forced > 20  # every conv and attention matmul
    with_conv_precision(model, "tf32")
    assert highest(model) == 0 and model.config.conv_precision == "default"
    assert {m.precision for _, m in nnx.iter_modules(model) if hasattr(m, "precision")} == {"default"}
    np.testing.assert_allclose(np.asarray(vae_decode(model, z)), before, atol=1e-6)
    with_conv_precision(model, "fp32")
    assert highest(model) == forced
    with pytest.raises(ValueError, match=r"VAE precision 'fp16'; choose one of \['fp32', 'tf32'\]"):
        with_conv_precision(model, "fp16")
    with pytest.raises(ValueError, match=r"VAE precision 'bf16'"):
        load_components("no-such-folder", vae_precision="bf16")  # refused before anything is read


OFFICIAL_SHAPES = {
    "wan21": {
        "conv1.weight": (32, 32, 1, 1, 1),
        "encoder.conv1.weight": (96, 3, 3, 3, 3),
        "encoder.head.2.weight": (32, 384, 3, 3, 3),
        "decoder.conv1.weight": (384, 16, 3, 3, 3),
        "decoder.upsamples.3.resample.1.weight": (192, 384, 3, 3),
        "decoder.upsamples.3.time_conv.weight": (768, 384, 3, 1, 1),
        "decoder.upsamples.4.shortcut.weight": (384, 192, 1, 1, 1),
        "decoder.head.2.weight": (3, 96, 3, 3, 3),
    },
    "wan22": {
        "conv1.weight": (96, 96, 1, 1, 1),
        "encoder.conv1.weight": (160, 12, 3, 3, 3),
        "encoder.downsamples.1.downsamples.2.time_conv.weight": (320, 320, 3, 1, 1),
        "encoder.head.2.weight": (96, 640, 3, 3, 3),
        "decoder.conv1.weight": (1024, 48, 3, 3, 3),
        "decoder.upsamples.0.upsamples.3.time_conv.weight": (2048, 1024, 3, 1, 1),
        "decoder.upsamples.2.upsamples.0.shortcut.weight": (512, 1024, 1, 1, 1),
        "decoder.head.2.weight": (12, 256, 3, 3, 3),
    },
}


@pytest.mark.parametrize(("name", "count", "tensors"), [("wan21", 126_892_531, 194), ("wan22", 704_688_668, 196)])
def test_full_size_parameter_and_tensor_counts(name, count, tensors):
    """wan22.md §2.9 / §6.3-6.4; cross-checked against diffusers' own model on the meta device."""
    import torch
    from diffusers import AutoencoderKLWan

    cfg = vae_preset(name)
    assert count_params(abstract_vae(cfg)) == count
    with torch.device("meta"):
        ref = AutoencoderKLWan(**vae_reference.diffusers_vae_config(cfg))
    assert sum(p.numel() for p in ref.parameters()) == count
    assert sorted(vae_keys.expected_keys(cfg, "diffusers")) == sorted(ref.state_dict())
    for layout in vae_keys.LAYOUTS:
        keys = vae_keys.expected_keys(cfg, layout)
        assert len(keys) == len(set(keys)) == tensors
    # Official names and shapes documented in wan22.md §6.3 / §6.4 (shapes via each row's diffusers twin).
    shapes = {rule.official: tuple(ref.state_dict()[rule.diffusers].shape) for rule in vae_keys.vae_rules(cfg)}
    for key, shape in OFFICIAL_SHAPES[name].items():
        assert shapes[key] == shape, key


def test_wan21_statistics_match_diffusers_defaults():
    import inspect

    from diffusers import AutoencoderKLWan

    params = inspect.signature(AutoencoderKLWan.__init__).parameters
    assert tuple(params["latents_mean"].default) == vae_preset("wan21").latents_mean
    assert tuple(params["latents_std"].default) == vae_preset("wan21").latents_std


def test_key_table_round_trip_and_official_names():
    """Both layouts round-trip; our official Wan2.1 names go through diffusers' own single-file converter."""
    import torch
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    for cfg in SMALL.values():
        weights = _random_weights(cfg, 2)
        for layout in vae_keys.LAYOUTS:
            named = vae_keys.from_cos_params(vae_keys.to_cos_params(weights, cfg, "diffusers"), cfg, layout)
            assert vae_keys.detect_layout(named) == layout
            back = vae_keys.vae_to_state_dict(vae_keys.vae_from_state_dict(named, cfg), "diffusers")
            assert back.keys() == weights.keys()
            for key, value in weights.items():
                np.testing.assert_array_equal(back[key], value, err_msg=key)
    cfg = SMALL["wan21"]
    weights = _random_weights(cfg, 3)
    official = vae_keys.vae_to_state_dict(vae_keys.vae_from_state_dict(weights, cfg), "official")
    converted = convert_wan_vae_to_diffusers({k: torch.from_numpy(v.copy()) for k, v in official.items()})
    assert set(converted) == set(weights)
    for key, value in converted.items():
        np.testing.assert_array_equal(value.numpy(), weights[key], err_msg=key)


def test_loader_is_strict():
    cfg = SMALL["wan21"]
    weights = _random_weights(cfg, 4)
    missing = dict(weights)
    del missing["decoder.conv_in.bias"]
    with pytest.raises(KeyMismatchError, match=r"1 missing tensors \[decoder.conv_in.bias\]"):
        vae_keys.vae_from_state_dict(missing, cfg)
    with pytest.raises(KeyMismatchError, match="1 unexpected tensors"):
        vae_keys.vae_from_state_dict({**weights, "encoder.extra.weight": np.zeros(1)}, cfg)
    wrong = {**weights, "quant_conv.bias": np.zeros(7, np.float32)}
    with pytest.raises(KeyMismatchError, match=r"quant_conv\.bias"):
        vae_keys.vae_from_state_dict(wrong, cfg)
    with pytest.raises(KeyMismatchError, match="missing"):  # a Wan2.1 checkpoint is not a Wan2.2 one
        vae_keys.vae_from_state_dict(weights, SMALL["wan22"])


def test_bad_inputs_give_clear_errors():
    model = vae_keys.vae_from_state_dict(_random_weights(SMALL["wan21"], 5), SMALL["wan21"])
    with pytest.raises(ValueError, match=r"8 frames; the VAE needs 4n\+1 frames \(e.g. 5 or 9\)"):
        model.encode(jnp.zeros((1, 8, 16, 16, 3)))
    with pytest.raises(ValueError, match="12x16 is not divisible by the VAE's spatial stride 8"):
        model.encode(jnp.zeros((1, 5, 12, 16, 3)))
    with pytest.raises(ValueError, match="channel-last"):
        model.encode(jnp.zeros((1, 3, 5, 16, 16)))
    with pytest.raises(ValueError, match=r"\[B, F>=1, h, w, 16\]"):
        model.decode(jnp.zeros((1, 2, 2, 2, 48)))
    with pytest.raises(ValueError, match="F>=1"):
        model.decode(jnp.zeros((1, 0, 2, 2, 16)))
    wan22 = vae_keys.vae_from_state_dict(_random_weights(SMALL["wan22"], 6), SMALL["wan22"])
    with pytest.raises(ValueError, match="spatial stride 16"):
        wan22.encode(jnp.zeros((1, 5, 16, 24, 3)))
    with pytest.raises(ValueError, match="latents_mean/std need z_dim=8"):
        VAEConfig(8, 8, 8, False, 1, latents_mean=(0.0,), latents_std=(1.0,))


def test_load_vae_from_files(tmp_path):
    """A diffusers safetensors file (or its folder) and an official-named .pth load to the same weights."""
    import torch
    from safetensors.numpy import save_file

    cfg = SMALL["wan21"]
    weights = _random_weights(cfg, 8)
    folder = tmp_path / "vae"
    folder.mkdir()
    save_file(weights, folder / "diffusion_pytorch_model.safetensors")
    official = vae_keys.from_cos_params(vae_keys.to_cos_params(weights, cfg), cfg, "official")
    torch.save({k: torch.from_numpy(v.copy()) for k, v in official.items()}, tmp_path / "Wan2.1_VAE.pth")
    for source in (folder, folder / "diffusion_pytorch_model.safetensors", tmp_path / "Wan2.1_VAE.pth"):
        back = vae_keys.vae_to_state_dict(vae_keys.load_vae(source, cfg), "diffusers")
        for key, value in weights.items():
            np.testing.assert_array_equal(back[key], value, err_msg=f"{source.name}: {key}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        vae_keys.load_vae(tmp_path / "missing.safetensors", cfg)
