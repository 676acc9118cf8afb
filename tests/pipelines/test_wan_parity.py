"""End-to-end parity: cos-jax Wan2.2 pipelines vs diffusers' own pipelines on one tiny random folder.

A random tiny pipeline is saved in diffusers format; cos-jax loads it with `load_components` (in-memory
conversion through the key tables) and both sides run from the same initial noise, σ grid, guidance and
step count (4 steps), fp32 on CPU. Each kind runs one sampler: T2V-A14B the folder's own flow UniPC on
diffusers' σ grid (`--preset diffusers`), I2V-A14B the paper's preset (Euler on DiffSynth's grid, switch at
t < 875) through `cos-jax sample` and the bench runner's `WanI2V`, TI2V-5B flow UniPC on the official Wan2.2
grid. Compared: the final latent and the decoded video.
"""

import json

import jax
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("diffusers")

from cos_jax.cli import main
from cos_jax.pipelines import wan
from cos_jax.pipelines.components import load_components
from cos_jax.pipelines.wan_reference import build_tiny_pipeline, run_diffusers, use_sigmas, with_image
from cos_jax.sampling import Trajectory, sampling_preset
from cos_jax.wan.codec import to_uint8

# max|Δ| / max|ref| against stock diffusers. Measured (scripts/pipeline_parity.py): latents 3.6e-6 to 5.7e-6,
# videos 1.4e-5 to 7.8e-5. The latent gap is mostly diffusers' float32 timestep sinusoid (cos-jax computes the
# official float64 one; swapping that into diffusers halves it); the decoder amplifies it in the video, while
# decoding the same latent on both sides differs by only 4e-6 to 9e-6.
LATENT_TOL = 2e-5
VIDEO_TOL = 2e-4
PROMPT, NEGATIVE = "a red ball rolls left over the table", "blue cube"


def _relative(ours, ref) -> float:
    return float(np.abs(np.asarray(ours) - ref).max() / np.abs(ref).max())


def _reference(pipe, spec, noise, config, image=None):
    latent, video, timesteps = run_diffusers(pipe, prompt=PROMPT, negative_prompt=NEGATIVE, noise=noise, steps=4,
                                             guidance=config.guidance_high, guidance_2=config.guidance_low
                                             if pipe.config.boundary_ratio else None, image=image, frames=spec.frames,
                                             height=spec.height, width=spec.width)  # fmt: skip
    np.testing.assert_allclose(timesteps, config.schedule().timesteps, rtol=1e-6)  # the same σ grid
    assert np.mean(np.abs(video) < 1) > 0.5, "most reference pixels are clamped; the test would be weak"
    return latent, video


def _noise(components, spec) -> np.ndarray:
    """`jax.random.normal(key(0))`: the noise `seeds=[0]` draws."""
    shape = wan.latent_shape(components, spec.frames, spec.height, spec.width)
    return np.asarray(jax.random.normal(jax.random.key(0), (1, *shape)))


def test_t2v_a14b_matches_diffusers(tmp_path):
    spec, pipe = build_tiny_pipeline(tmp_path / "t2v", "t2v-a14b")
    components = load_components(tmp_path / "t2v")
    assert components.model_type == "t2v" and len(components.experts) == 2
    config = wan.sampling_config(components, "diffusers", steps=4, guidance=(4.0, 3.0))
    assert (config.grid, config.boundary, config.switch_step()) == ("diffusers", 875, 2)  # both experts run
    noise = _noise(components, spec)
    out = wan.generate(components, PROMPT, negative_prompt=NEGATIVE, noise=noise, config=config, keep_steps=[],
                       frames=spec.frames, height=spec.height, width=spec.width,
                       cache_dir=tmp_path / "prompts")  # fmt: skip
    assert len(list((tmp_path / "prompts").glob("*.npy"))) == 2  # prompt and negative prompt, cached
    video = wan.decode_latents(components, out.trajectory.latent, as_uint8=False)
    ref_latent, ref_video = _reference(pipe, spec, noise, config)
    assert _relative(out.trajectory.latent, ref_latent) <= LATENT_TOL
    assert video.shape == ref_video.shape and _relative(video, ref_video) <= VIDEO_TOL

    # The same folder through `cos-jax convert` (fp32): the pipeline loads the Orbax components instead.
    from cos_jax.convert.convert import convert_checkpoint

    convert_checkpoint(tmp_path / "t2v", tmp_path / "converted", dtype="fp32")
    converted = load_components(tmp_path / "converted")
    assert len(converted.experts) == 2 and converted.boundary_ratio == components.boundary_ratio
    again = wan.generate(converted, PROMPT, negative_prompt=NEGATIVE, noise=noise, config=config, keep_steps=[],
                         frames=spec.frames, height=spec.height, width=spec.width)  # fmt: skip
    np.testing.assert_allclose(again.trajectory.latent, out.trajectory.latent, rtol=0, atol=1e-6)


def test_i2v_a14b_cli_and_bench_generator_match_diffusers(tmp_path):
    """`cos-jax sample` with the paper preset writes its files; its latent and video match diffusers run on the
    same σ; `WanI2V.generate_video` (seed 0, same settings) gives the same video."""
    import imageio.v3 as iio

    spec, pipe = build_tiny_pipeline(tmp_path / "i2v", "i2v-a14b")
    first = np.random.default_rng(1).integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)
    Image.fromarray(first).save(tmp_path / "first.png")
    out = tmp_path / "run"
    assert main(["sample", "--model", str(tmp_path / "i2v"), "--prompt", PROMPT, "--negative-prompt", NEGATIVE,
                 "--image", str(tmp_path / "first.png"), "--frames", "9", "--size", f"{spec.width}*{spec.height}",
                 "--preset", "paper", "--steps", "4", "--guidance", "4,3", "--resize", "diffusers",
                 "--decode-steps", "0-3", "--decode-batch", "1", "--seed", "0", "--out", str(out)]) == 0  # fmt: skip

    info = json.loads((out / "run.json").read_text())
    assert (info["model_type"], info["frames"], info["height"], info["width"]) == ("i2v", 9, spec.height, spec.width)
    assert info["switch_step"] == 2 and info["fps"] == 16  # paper preset, 4 steps: t = 1000, 937.5 | 833.3, 625
    expected = ["trajectory.npz", "video_world0.mp4", *(f"x0/step{s:03d}_world0.mp4" for s in range(4)),
                "x0_grid_world0.png"]  # fmt: skip
    assert info["files"] == expected and all((out / f).is_file() for f in expected)
    assert iio.imread(out / "video_world0.mp4").shape == (9, spec.height, spec.width, 3)
    assert iio.imread(out / "x0_grid_world0.png").ndim == 3
    traj = Trajectory.load(out / "trajectory.npz")
    assert traj.x0_steps.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(traj.x0_at(3), traj.latent, rtol=0, atol=1e-6)  # last x̂0 = the final latent

    components = load_components(tmp_path / "i2v")
    video = wan.decode_latents(components, traj.latent, as_uint8=False)
    config = sampling_preset("paper").replace(steps=4, guidance_high=4.0, guidance_low=3.0)
    use_sigmas(pipe, config.schedule().sigmas, "euler")
    ref_latent, ref_video = _reference(pipe, spec, _noise(components, spec), config, first)
    assert _relative(traj.latent, ref_latent) <= LATENT_TOL
    assert video.shape == ref_video.shape and _relative(video, ref_video) <= VIDEO_TOL

    generator = wan.WanI2V(components, preset=config, negative_prompt=NEGATIVE, resize="diffusers")
    frames = generator.generate_video(PROMPT, first, num_frames=9, height=spec.height, width=spec.width, seed=0)
    assert frames.dtype == np.uint8 and frames.shape == (9, spec.height, spec.width, 3)
    assert np.abs(frames.astype(int) - np.asarray(to_uint8(video[0]))).max() <= 1

    # The bench runner's `wan` backend wraps the same pipeline.
    from cos_jax.bench.generators import Request, make_generator

    bench = make_generator("wan", weights=str(tmp_path / "i2v"), steps=2, guidance=4.0)
    assert bench.settings["weights"] == str(tmp_path / "i2v") and bench.settings["steps"] == 2
    (clip,) = bench.generate([Request(PROMPT, first, 9, spec.height, spec.width, 0)])
    assert clip.dtype == np.uint8 and clip.shape == (9, spec.height, spec.width, 3)


def test_ti2v_5b_matches_diffusers_with_and_without_image(tmp_path):
    spec, pipe = build_tiny_pipeline(tmp_path / "ti2v", "ti2v-5b")
    components = load_components(tmp_path / "ti2v")
    assert components.model_type == "ti2v" and len(components.experts) == 1
    config = sampling_preset("official-ti2v-5b").replace(steps=4, guidance_high=4.0, guidance_low=4.0)
    use_sigmas(pipe, config.schedule().sigmas, "unipc")
    image = np.random.default_rng(1).integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)
    noise = _noise(components, spec)
    size = dict(frames=spec.frames, height=spec.height, width=spec.width)
    for first in (image, None):  # image-to-video (frame 0 held at the image latent), then text-to-video
        out = wan.generate(components, PROMPT, image=first, negative_prompt=NEGATIVE, noise=noise, config=config,
                           resize="diffusers", keep_steps=[1], **size)  # fmt: skip
        video = wan.decode_latents(components, out.trajectory.latent, as_uint8=False)
        ref_latent, ref_video = _reference(pipe if first is None else with_image(pipe), spec, noise, config, first)
        sampled = slice(None)
        if first is not None:
            # Frame 0 is the image latent: cos-jax holds it after every step (and in decoded x̂0); diffusers
            # overwrites only the model input and the output, so scheduler latents agree on frames 1..F-1.
            np.testing.assert_array_equal(out.trajectory.latent[:, :1], out.clean_latent[:, :1])
            np.testing.assert_array_equal(wan.x0_latents(out, [1])[0, :, :1], out.clean_latent[:, :1])
            sampled = slice(1, None)
        assert _relative(out.trajectory.latent[:, sampled], ref_latent[:, sampled]) <= LATENT_TOL
        assert video.shape == ref_video.shape and _relative(video, ref_video) <= VIDEO_TOL
