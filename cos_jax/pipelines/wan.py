"""Wan2.2 pipelines over `Components`: prompts (+ a first frame) → `Conditions` → `sample` → videos.

- T2V-A14B: text only; two experts switched at the config's boundary.
- I2V-A14B: y = [mask (4 channels, 1 at latent frame 0) | VAE(first frame, then zero frames)], concatenated
  to the noisy latent on channels (wan22.md §4.1).
- TI2V-5B: with an image, the VAE latent of the first frame holds latent frame 0 at every step and its
  tokens see timestep 0 (`Conditions.clean_latent` / `clean_frames`, §4.2); without one, plain T2V.

Denoising always goes through `cos_jax.sampling.sample` (one jitted `lax.scan`). Text goes through the
official cleaning, 512-token padding and zeroed rows past the prompt (`cos_jax.wan.text`), optionally
cached on disk (`PromptCache`). Decoding uses the chunked VAE, a fixed batch size so it compiles once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Float, UInt8
from tqdm.auto import tqdm

from cos_jax.pipelines.components import Components
from cos_jax.pipelines.images import Resize, preprocess_image
from cos_jax.probes.plan import Plan
from cos_jax.sampling import Conditions, SamplingConfig, Trajectory, initial_noise, sample, sampling_preset
from cos_jax.wan.codec import to_uint8
from cos_jax.wan.text import PromptCache
from cos_jax.wan.vae import vae_decode, vae_encode

# Wan2.2's `sample_neg_prompt` (shared_config.py), used by the official code and DiffSynth when none is given.
NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
    "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，"
    "三条腿，背景人很多，倒着走"
)
DEFAULT_PRESET = {"t2v": "official-t2v-a14b", "i2v": "official-i2v-a14b", "ti2v": "official-ti2v-5b"}
DEFAULT_FRAMES = {"t2v": 81, "i2v": 81, "ti2v": 121}
DEFAULT_SIZE = {"t2v": (480, 832), "i2v": (480, 832), "ti2v": (704, 1280)}  # (height, width)
DEFAULT_FPS = {"t2v": 16, "i2v": 16, "ti2v": 24}
MODEL_NAMES = {"t2v": "text-to-video (T2V-A14B)", "i2v": "image-to-video (I2V-A14B)", "ti2v": "TI2V-5B"}


@dataclasses.dataclass
class WanOutput:
    """One pipeline run: the trajectory (latents [W, F, h, w, C], kept x̂0), the video size, and for TI2V
    with an image the clean first-frame latents [1|W, F, h, w, C] (frame 0 set) held during sampling."""

    trajectory: Trajectory
    frames: int
    height: int
    width: int
    clean_latent: np.ndarray | None = None


# ---- checks and sizes -------------------------------------------------------------------------------
def check_video_size(components: Components, frames: int, height: int, width: int) -> None:
    """Raise a `ValueError` naming the bad value and the nearest valid ones."""
    t = components.vae_config.temporal_stride
    if frames < 1 or (frames - 1) % t:
        lo = max(1, (frames - 1) // t * t + 1)
        raise ValueError(f"frames={frames}: Wan needs {t}n+1 frames (e.g. {lo} or {lo + t}); 81 is the default")
    mh, mw = components.size_multiple
    stride, patch = components.vae_config.spatial_stride, components.dit_config.patch_size[1]
    for name, value, m in (("height", height, mh), ("width", width, mw)):
        if value < m or value % m:
            lo = max(m, value // m * m)
            raise ValueError(
                f"{name}={value} is not a multiple of {m} (VAE stride {stride} × patch {patch}) for this "
                f"{MODEL_NAMES[components.model_type]} model; use {lo} or {lo + m}"
            )


def latent_shape(components: Components, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(F, h, w, C) of the latent for a video of `frames` × height × width."""
    check_video_size(components, frames, height, width)
    vae = components.vae_config
    s = vae.spatial_stride
    return vae.latent_frames(frames), height // s, width // s, vae.z_dim


def check_image_use(components: Components, has_image: bool) -> None:
    kind = components.model_type
    if kind == "i2v" and not has_image:
        raise ValueError(
            "this is an image-to-video model (I2V-A14B): it needs a first frame; pass image= (or --image first.png)"
        )
    if kind == "t2v" and has_image:
        raise ValueError(
            "this is a text-to-video model (T2V-A14B): it takes no image; drop image= / --image, or use an "
            "I2V-A14B or TI2V-5B model for image-to-video"
        )


# ---- text -------------------------------------------------------------------------------------------
@partial(nnx.jit, static_argnames=("policy",))
def _encode_tokens(encoder, ids, mask, policy: str):
    return encoder(ids, mask, policy=policy)


def encode_prompts(
    components: Components, prompts: Sequence[str], *, cache_dir: str | None = None, policy: str = "fp32"
) -> Float[np.ndarray, "N L D"]:
    """umT5 embeddings [N, text_len, D] (float32; rows past each prompt are zero), cached on disk when
    `cache_dir` is given."""

    def encode(batch: list[str]) -> np.ndarray:
        ids, mask = components.tokenizer(batch)
        return np.asarray(_encode_tokens(components.text_encoder, jnp.asarray(ids), jnp.asarray(mask), policy))

    prompts = list(prompts)
    if cache_dir is None:
        return encode(prompts)
    return PromptCache(cache_dir, f"{components.encoder_id}:{policy}").get_or_compute(prompts, encode)


# ---- image conditioning ----------------------------------------------------------------------------
def i2v_condition(
    components: Components, images: Float[jax.Array, "B H W 3"], frames: int
) -> Float[jax.Array, "B F h w Cy"]:
    """I2V-A14B's y: [mask (temporal stride channels) | VAE(first frame, then frames−1 zero frames)]."""
    b, h, w, _ = images.shape
    video = jnp.concatenate([images[:, None], jnp.zeros((b, frames - 1, h, w, 3), images.dtype)], axis=1)
    latent = vae_encode(components.vae, video)
    mask = jnp.zeros((*latent.shape[:-1], components.vae_config.temporal_stride), latent.dtype).at[:, 0].set(1.0)
    return jnp.concatenate([mask, latent], axis=-1)


def ti2v_condition(
    components: Components, images: Float[jax.Array, "B H W 3"], frames: int
) -> tuple[Float[jax.Array, "B F h w C"], Float[jax.Array, " F"]]:
    """TI2V-5B's (clean_latent, clean_frames): the first frame's latent at frame 0, 0 there in the mask."""
    first = vae_encode(components.vae, images[:, None])  # [B, 1, h, w, C]
    num = components.vae_config.latent_frames(frames)
    clean = jnp.zeros((first.shape[0], num, *first.shape[2:]), first.dtype).at[:, :1].set(first)
    return clean, jnp.ones((num,), jnp.float32).at[0].set(0.0)


def _prepare_images(components, images, worlds, height, width, resize) -> np.ndarray:
    """[1|W, h, w, 3] float32 in [−1, 1]; every image must resize to the same size."""
    if (isinstance(images, np.ndarray) and images.ndim == 4) or isinstance(images, list | tuple):
        batch = list(images)
    else:
        batch = [images]
    if len(batch) not in (1, worlds):
        raise ValueError(f"got {len(batch)} images for {worlds} worlds; pass one image or one per seed")
    stride, patch = components.vae_config.spatial_stride, components.dit_config.patch_size[1]
    out = [preprocess_image(im, height, width, model_type=components.model_type, stride=stride, patch=patch,
                            mode=resize) for im in batch]  # fmt: skip
    sizes = {o.shape for o in out}
    if len(sizes) != 1:
        raise ValueError(f"the images resize to different sizes {sorted(sizes)}; give images of one aspect ratio")
    return np.stack(out)


# ---- sampling config --------------------------------------------------------------------------------
def sampling_config(
    components: Components,
    preset: str | SamplingConfig | None = None,
    *,
    steps: int | None = None,
    guidance: float | tuple[float, float] | None = None,
) -> SamplingConfig:
    """The model's official preset by default; `diffusers` reads the folder's own scheduler and boundary.
    `guidance` is one scale for both experts or (high-noise, low-noise)."""
    if isinstance(preset, SamplingConfig):
        config = preset
    elif preset == "diffusers":
        config = diffusers_sampling(components)
    else:
        config = sampling_preset(preset or DEFAULT_PRESET[components.model_type])
    if steps is not None:
        config = config.replace(steps=steps)
    if guidance is not None:
        high, low = (guidance, guidance) if isinstance(guidance, int | float) else guidance
        config = config.replace(guidance_high=float(high), guidance_low=float(low))
    return config


def diffusers_sampling(components: Components) -> SamplingConfig:
    """The sampler a diffusers pipeline folder runs by default (its UniPC flow scheduler, 50 steps, CFG 5)."""
    sched = components.scheduler_config or {}
    name = sched.get("_class_name")
    unipc_defaults = dict(solver_order=2, solver_type="bh2", lower_order_final=True, predict_x0=True)
    if name != "UniPCMultistepScheduler" or not sched.get("use_flow_sigmas"):
        raise ValueError(
            f"{components.source}: scheduler {name!r} (use_flow_sigmas={sched.get('use_flow_sigmas')}) has no cos-jax "
            "σ grid; use --preset paper or an official-… preset"
        )
    odd = {k: sched[k] for k, v in unipc_defaults.items() if k in sched and sched[k] != v}
    if odd:
        raise ValueError(f"{components.source}: unsupported UniPC settings {odd}; cos-jax runs order-2 bh2 UniPC")
    boundary = None if components.boundary_ratio is None else components.boundary_ratio * 1000
    return SamplingConfig("unipc", 50, float(sched.get("flow_shift", 1.0)), "diffusers", 5.0, 5.0, boundary=boundary)


# ---- generation -------------------------------------------------------------------------------------
def generate(
    components: Components,
    prompt: str | Sequence[str],
    *,
    image=None,
    negative_prompt: str | None = None,
    frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    seeds: Sequence[int] = (0,),
    noise: Float[jax.Array, "W F h w C"] | None = None,
    config: str | SamplingConfig | None = None,
    resize: Resize = "official",
    keep_steps: Sequence[int] | None = None,
    x0_dtype: str = "float32",
    plan: Plan | None = None,
    policy: str = "fp32",
    cache_dir: str | None = None,
    progress: bool = False,
) -> WanOutput:
    """Sample one world per seed (or per row of `noise`) for the prompt(s) and optional first frame(s).

    `image` is a uint8 RGB image [H, W, 3] (or PIL image) shared by all worlds, or one per world; it is
    resized by `resize` (see `cos_jax.pipelines.images`). `negative_prompt=None` uses Wan2.2's default
    negative prompt. `config` is a preset name, a `SamplingConfig`, or None for the model's official
    preset. x̂0 is kept at `keep_steps` (default all).
    """
    kind = components.model_type
    check_image_use(components, image is not None)
    frames = frames or DEFAULT_FRAMES[kind]
    dh, dw = DEFAULT_SIZE[kind]
    height, width = height or dh, width or dw
    check_video_size(components, frames, height, width)
    worlds = len(seeds) if noise is None else noise.shape[0]
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if len(prompts) not in (1, worlds):
        raise ValueError(f"got {len(prompts)} prompts for {worlds} worlds; pass one prompt or one per seed")
    negative = NEGATIVE_PROMPT if negative_prompt is None else negative_prompt
    config = sampling_config(components, config)
    if len(components.experts) == 2 and config.boundary is None:
        raise ValueError(f"{components.source}: two experts need a preset with an expert switch (boundary); "
                         f"{config} has none, e.g. use 'paper' or {DEFAULT_PRESET[kind]!r}")  # fmt: skip

    y = clean_latent = clean_frames = None
    pixels = None if image is None else _prepare_images(components, image, worlds, height, width, resize)
    if pixels is not None:
        height, width = pixels.shape[1:3]
    shape = latent_shape(components, frames, height, width)
    if noise is not None and tuple(noise.shape[1:]) != shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)}; this video needs [W, {', '.join(map(str, shape))}]")
    if pixels is not None:
        if kind == "i2v":
            y = i2v_condition(components, jnp.asarray(pixels), frames)
        else:
            clean_latent, clean_frames = ti2v_condition(components, jnp.asarray(pixels), frames)
    embeddings = encode_prompts(components, [*dict.fromkeys(prompts), negative], cache_dir=cache_dir, policy=policy)
    index = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
    context = embeddings[[index[p] for p in prompts]]
    cond = Conditions(context=jnp.asarray(context), negative=jnp.asarray(embeddings[-1:]), y=y,
                      clean_latent=clean_latent, clean_frames=clean_frames)  # fmt: skip
    given_noise = noise is not None
    if noise is None:
        noise = initial_noise(list(seeds), shape)
    experts = components.experts if len(components.experts) == 2 else components.experts[0]
    traj = sample(experts, cond, config, noise=jnp.asarray(noise), plan=plan, keep_steps=keep_steps,
                  x0_dtype=x0_dtype, policy=policy, progress=progress)  # fmt: skip
    traj.meta["seeds"] = None if given_noise else list(seeds)
    traj.meta["pipeline"] = {
        "model_type": kind,
        "source": components.source,
        "prompts": prompts,
        "negative_prompt": negative,
        "frames": frames,
        "height": height,
        "width": width,
        "image": image is not None,
        "resize": resize if image is not None else None,
    }
    return WanOutput(traj, frames, height, width, None if clean_latent is None else np.asarray(clean_latent))


# ---- decoding ---------------------------------------------------------------------------------------
_to_uint8 = jax.jit(to_uint8)


def decode_latents(
    components: Components,
    latents: Float[np.ndarray, "N F h w C"],
    *,
    batch_size: int | None = None,
    as_uint8: bool = True,
    progress: bool = False,
) -> UInt8[np.ndarray, "N T H W 3"] | Float[np.ndarray, "N T H W 3"]:
    """Decode N latent videos in fixed-size batches (`None`: all N in one call), so the VAE compiles once.
    Returns uint8 videos, or float32 in [−1, 1] with `as_uint8=False`."""
    latents = np.asarray(latents, np.float32)
    n = latents.shape[0]
    batch = n if batch_size is None else max(1, min(batch_size, n))
    pad = (-n) % batch
    if pad:
        latents = np.concatenate([latents, np.zeros((pad, *latents.shape[1:]), latents.dtype)])
    outs = []
    for i in tqdm(range(0, n + pad, batch), desc="decoding", unit="batch", disable=not progress):
        video = vae_decode(components.vae, jnp.asarray(latents[i : i + batch]))
        outs.append(np.asarray(_to_uint8(video) if as_uint8 else video))
    return np.concatenate(outs)[:n]


def x0_latents(output: WanOutput, steps: Sequence[int]) -> Float[np.ndarray, "K W F h w C"]:
    """The kept x̂0 at `steps`. With a TI2V image, latent frame 0 is set to the clean image latent (the frame
    the sampler holds; the model's x̂0 there is not meaningful, its tokens run at t = 0)."""
    traj = output.trajectory
    if np.asarray(traj.x0).shape[3:5] != traj.latent.shape[2:4]:
        raise ValueError("x̂0 was kept with a spatial stride; decoding needs the full latent (x0_stride=1)")
    if not len(steps):
        return np.zeros((0, *traj.latent.shape), np.float32)
    x0 = np.stack([traj.x0_at(int(s)) for s in steps]).astype(np.float32)
    if output.clean_latent is not None:
        x0[:, :, :1] = np.broadcast_to(output.clean_latent[:, :1], x0[:, :, :1].shape)
    return x0


def decode(
    components: Components,
    output: WanOutput,
    x0_steps: Sequence[int] = (),
    *,
    batch_size: int | None = None,
    progress: bool = False,
) -> tuple[UInt8[np.ndarray, "W T H W2 3"], UInt8[np.ndarray, "K W T H W2 3"]]:
    """(final videos [W, T, H, W, 3], x̂0 videos [K, W, T, H, W, 3] at the kept `x0_steps`), uint8.

    The final latents and every step × world x̂0 are decoded as one batch — one compiled decoder call, or
    fixed-size `batch_size` chunks of the same program when memory is short."""
    latent = np.asarray(output.trajectory.latent, np.float32)
    x0 = x0_latents(output, list(x0_steps))
    k, w = x0.shape[:2]
    stacked = np.concatenate([latent, x0.reshape(k * w, *latent.shape[1:])])
    videos = decode_latents(components, stacked, batch_size=batch_size, progress=progress)
    return videos[:w], videos[w:].reshape(k, w, *videos.shape[1:])


# ---- the bench runner's generator -------------------------------------------------------------------
class WanI2V:
    """Image-to-video with a fixed sampler: `generate_video(prompt, first_frame, num_frames, height, width,
    seed) -> uint8 [T, H, W, 3]` (the signature a benchmark runner calls).

    Defaults follow the paper's VBVR setup: the `paper` preset (DiffSynth Euler, 50 steps, shift 5, CFG 5,
    switch at t < 875), DiffSynth's image resize (stretched to exactly height × width) and Wan's negative
    prompt. Works with I2V-A14B and TI2V-5B components.
    """

    def __init__(
        self,
        components: Components,
        *,
        preset: str | SamplingConfig = "paper",
        steps: int | None = None,
        guidance: float | tuple[float, float] | None = None,
        negative_prompt: str | None = None,
        resize: Resize = "diffsynth",
        policy: str = "fp32",
        cache_dir: str | None = None,
        perturb=None,
    ):
        if components.model_type == "t2v":
            check_image_use(components, True)
        self.components = components
        self.config = sampling_config(components, preset, steps=steps, guidance=guidance)
        self.negative_prompt, self.resize, self.policy, self.cache_dir = negative_prompt, resize, policy, cache_dir
        self.perturb = perturb  # None, or noise for every trajectory: `.plan(steps, latent_frames, worlds)`

    def sample(self, prompt: str, first_frame, num_frames: int, height: int, width: int, seed: int) -> WanOutput:
        """The trajectory behind `generate_video` (final latent, no x̂0 kept; `perturb`'s noise injected)."""
        plan = None
        if self.perturb is not None:
            latent_frames = latent_shape(self.components, num_frames, height, width)[0]
            plan = self.perturb.plan(self.config.steps, latent_frames, 1)
        return generate(self.components, prompt, image=first_frame, negative_prompt=self.negative_prompt,
                        frames=num_frames, height=height, width=width, seeds=[seed], config=self.config,
                        resize=self.resize, keep_steps=[], plan=plan, policy=self.policy,
                        cache_dir=self.cache_dir)  # fmt: skip

    def generate_video(
        self, prompt: str, first_frame: UInt8[np.ndarray, "H W 3"], num_frames: int, height: int, width: int, seed: int
    ) -> UInt8[np.ndarray, "T H W 3"]:
        """The decoded video of one world: uint8 [num_frames, H, W, 3] (H, W = height, width unless the
        `official` resize follows the image's aspect ratio)."""
        return decode(self.components, self.sample(prompt, first_frame, num_frames, height, width, seed))[0][0]

    __call__ = generate_video
