"""Clear errors for bad pipeline inputs, checked before anything is computed (abstract components)."""

import json

import numpy as np
import pytest

from cos_jax.pipelines import wan
from cos_jax.pipelines.components import Components, load_components
from cos_jax.pipelines.images import ImageError
from cos_jax.pipelines.wan_reference import tiny_spec, write_tokenizer
from cos_jax.wan.dit import abstract_dit
from cos_jax.wan.t5 import abstract_umt5
from cos_jax.wan.text import PromptTokenizer
from cos_jax.wan.vae import abstract_vae, vae_preset


def _components(kind: str, tmp_path, vae=None) -> Components:
    """Shape-only components (no parameters in memory): enough for every check below."""
    spec = tiny_spec(kind)
    experts = (abstract_dit(spec.dit),) * (1 if kind == "ti2v-5b" else 2)
    tokenizer = PromptTokenizer(write_tokenizer(tmp_path / "tok").parent, spec.dit.text_len)
    return Components(experts, abstract_vae(vae or spec.vae), abstract_umt5(spec.t5), tokenizer, 0.9, source=kind)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    z16, z48 = vae_preset("wan21").small(8), vae_preset("wan22").small(8, 16)  # the released layouts, narrow
    return {
        "t2v": _components("t2v-a14b", tmp, z16),
        "i2v": _components("i2v-a14b", tmp, z16),
        "ti2v": _components("ti2v-5b", tmp, z48),
    }


IMAGE = np.zeros((48, 32, 3), np.uint8)


def test_frames_must_be_4n_plus_1(models):
    with pytest.raises(ValueError, match=r"frames=10: Wan needs 4n\+1 frames \(e\.g\. 9 or 13\)"):
        wan.generate(models["t2v"], "a cat", frames=10, height=48, width=32)


def test_size_multiples_come_from_vae_stride_and_patch(models):
    assert models["t2v"].size_multiple == (16, 16) and models["ti2v"].size_multiple == (32, 32)
    with pytest.raises(ValueError, match=r"height=40 is not a multiple of 16 \(VAE stride 8 × patch 2\).*use 32 or 48"):
        wan.generate(models["t2v"], "a cat", frames=9, height=40, width=32)
    with pytest.raises(ValueError, match=r"width=48 is not a multiple of 32 \(VAE stride 16 × patch 2\).*TI2V-5B"):
        wan.generate(models["ti2v"], "a cat", frames=9, height=64, width=48)


def test_image_and_model_kind_must_agree(models):
    with pytest.raises(ValueError, match=r"image-to-video model .*needs a first frame; pass image="):
        wan.generate(models["i2v"], "a cat", frames=9, height=48, width=32)
    with pytest.raises(ValueError, match=r"text-to-video model .*takes no image"):
        wan.generate(models["t2v"], "a cat", image=IMAGE, frames=9, height=48, width=32)
    with pytest.raises(ValueError, match="text-to-video model"):
        wan.WanI2V(models["t2v"])


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((48, 32, 4), np.uint8), "RGBA"),
        (np.zeros((48, 32), np.uint8), "grayscale"),
        (np.zeros((48, 32, 3), np.float32), "uint8"),
    ],
)
def test_bad_first_frames(models, image, message):
    with pytest.raises(ImageError, match=message):
        wan.generate(models["i2v"], "a cat", image=image, frames=9, height=48, width=32)


def test_worlds_prompts_images_and_noise_must_agree(models):
    with pytest.raises(ValueError, match="got 2 prompts for 3 worlds"):
        wan.generate(models["t2v"], ["a", "b"], seeds=[0, 1, 2], frames=9, height=48, width=32)
    with pytest.raises(ValueError, match="got 2 images for 3 worlds"):
        wan.generate(models["i2v"], "a", image=[IMAGE, IMAGE], seeds=[0, 1, 2], frames=9, height=48, width=32)
    with pytest.raises(ValueError, match=r"noise has shape \(1, 3, 4, 4, 16\); this video needs \[W, 3, 6, 4, 16\]"):
        wan.generate(models["t2v"], "a", noise=np.zeros((1, 3, 4, 4, 16), np.float32), frames=9, height=48, width=32)


def _fake_folder(root, tokenizer_files=("spiece.model",), skip=()):
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline", "boundary_ratio": 0.875}))
    for sub in ("transformer", "vae", "text_encoder", "tokenizer"):
        if sub not in skip:
            (root / sub).mkdir()
    for name in tokenizer_files:
        (root / "tokenizer" / name).write_text("")
    return root


def test_missing_pipeline_pieces(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tokenizer has no tokenizer\.json \(found: \['spiece\.model'\]\).*"
                       r"save_pretrained"):  # fmt: skip
        load_components(_fake_folder(tmp_path / "a"))
    with pytest.raises(FileNotFoundError, match=r"lacks vae/, text_encoder/"):
        load_components(_fake_folder(tmp_path / "b", skip=("vae", "text_encoder")))
    with pytest.raises(FileNotFoundError, match=r"no model_index\.json"):
        load_components(tmp_path / "a" / "vae")
    (tmp_path / "converted").mkdir()
    (tmp_path / "converted" / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match=r"manifest\.json: format None vNone is not cos-jax-checkpoint v1"):
        load_components(tmp_path / "converted")  # a converted folder goes to the Orbax loader


def test_diffusers_preset_needs_a_flow_unipc_scheduler(models):
    comps = models["t2v"]
    comps.scheduler_config = {"_class_name": "FlowMatchEulerDiscreteScheduler"}
    with pytest.raises(ValueError, match="has no cos-jax σ grid; use --preset paper"):
        wan.sampling_config(comps, "diffusers")
    comps.scheduler_config = {"_class_name": "UniPCMultistepScheduler", "use_flow_sigmas": True, "flow_shift": 3.0}
    config = wan.sampling_config(comps, "diffusers", steps=4, guidance=(4, 3))
    assert (config.grid, config.shift, config.boundary, config.guidance_high, config.guidance_low) == (
        "diffusers", 3.0, 900.0, 4.0, 3.0)  # fmt: skip
    comps.scheduler_config = None
