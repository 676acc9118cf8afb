"""The diffusers side of end-to-end pipeline parity: tiny random Wan2.2 pipelines saved in diffusers format,
and runs of diffusers' own `WanPipeline` / `WanImageToVideoPipeline` on them.

Needs the `test` extra (torch, diffusers, transformers). Everything is built offline: random float32 DiT(s)
(`WanTransformer3DModel`), a small `AutoencoderKLWan` (z 16 for A14B-style, z 48 for TI2V-style), a small
`UMT5EncoderModel`, a word-level `tokenizers` tokenizer that appends `</s>` like umT5's, and the flow UniPC
scheduler diffusers' Wan folders ship. `cos_jax.pipelines.load_components` reads the same folder.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from cos_jax.convert.reference import _torch, official_sinusoid, random_reference_dit
from cos_jax.convert.vae_reference import random_reference_vae
from cos_jax.wan.config import DiTConfig
from cos_jax.wan.t5 import T5Config
from cos_jax.wan.vae import VAEConfig, vae_preset

# fmt: off
WORDS = ("a", "the", "of", "in", "on", "over", "and", "with", "to", "is", "are", "red", "blue", "green", "yellow",
         "ball", "cube", "cat", "dog", "bird", "runs", "jumps", "rolls", "flies", "park", "room", "table", "maze",
         "path", "grid", "video", "slowly", "quickly", "left", "right", "up", "down")
# fmt: on
SPECIAL = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in umT5


@dataclasses.dataclass(frozen=True)
class TinySpec:
    """A tiny pipeline of one Wan2.2 kind and the video size its tests use."""

    kind: str  # "t2v-a14b", "i2v-a14b", "ti2v-5b"
    dit: DiTConfig
    vae: VAEConfig
    t5: T5Config
    frames: int
    height: int
    width: int
    boundary_ratio: float | None
    flow_shift: float


def _dit(model_type: str, in_dim: int, out_dim: int, text_dim: int) -> DiTConfig:
    return DiTConfig(model_type, dim=48, ffn_dim=64, num_heads=2, num_layers=2, in_dim=in_dim, out_dim=out_dim,
                     text_dim=text_dim)  # fmt: skip


def shallow(vae: VAEConfig) -> VAEConfig:
    """The same VAE blocks with 3 levels and one residual block each (spatial stride halved, temporal stride
    4 kept): a third of the CPU compile time of the 4-level layout, whose parity `tests/test_vae.py` checks."""
    return vae.replace(dim_mult=(1, 1, 1), num_res_blocks=1, temporal_downsample=(True, True))


def tiny_spec(kind: str, full_vae: bool = False) -> TinySpec:
    """The tiny pipeline of `kind`; `full_vae` keeps the released 4-level VAE layouts (narrow)."""
    t5 = T5Config(vocab_size=len(SPECIAL) + len(WORDS), dim=32, head_dim=8, num_heads=4, ffn_dim=48, num_layers=2)
    z16, z48 = vae_preset("wan21").small(8), vae_preset("wan22").small(8, 16)
    if not full_vae:
        z16, z48 = shallow(z16), shallow(z48)
    if kind == "t2v-a14b":
        return TinySpec(kind, _dit("t2v", 16, 16, t5.dim), z16, t5, 9, 32, 48, 0.875, 3.0)
    if kind == "i2v-a14b":
        return TinySpec(kind, _dit("i2v", 36, 16, t5.dim), z16, t5, 9, 32, 48, 0.9, 3.0)
    if kind == "ti2v-5b":
        h, w = (64, 96) if full_vae else (32, 48)
        return TinySpec(kind, _dit("ti2v", 48, 48, t5.dim), z48, t5, 9, h, w, None, 5.0)
    raise ValueError(f"unknown tiny pipeline kind {kind!r}; choose t2v-a14b, i2v-a14b or ti2v-5b")


def write_tokenizer(folder: str | os.PathLike) -> Path:
    """A word-level `tokenizer.json` (pad 0, `</s>` 1 appended like umT5's, unk 2) over `WORDS`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate((*SPECIAL, *WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


def _tokenizer(folder: Path):
    """`write_tokenizer` wrapped as a transformers fast tokenizer (what diffusers' pipelines hold)."""
    import transformers

    file = write_tokenizer(folder)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(file), pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def random_reference_t5(cfg: T5Config, seed: int = 0):
    """A float32 transformers `UMT5EncoderModel` of `cfg` with every parameter randomised."""
    torch, _ = _torch()
    import transformers

    torch.manual_seed(seed)
    hf = transformers.UMT5Config(vocab_size=cfg.vocab_size, d_model=cfg.dim, d_kv=cfg.head_dim, d_ff=cfg.ffn_dim,
                                 num_layers=cfg.num_layers, num_heads=cfg.num_heads,
                                 relative_attention_num_buckets=cfg.num_buckets,
                                 relative_attention_max_distance=cfg.max_distance, feed_forward_proj="gated-gelu",
                                 layer_norm_epsilon=cfg.eps)  # fmt: skip
    model = transformers.UMT5EncoderModel(hf).float().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def build_tiny_pipeline(folder: str | os.PathLike, kind: str, seed: int = 0, full_vae: bool = False):
    """Save a random tiny pipeline of `kind` in diffusers format (`save_pretrained`) into `folder`; return
    (spec, the in-memory diffusers pipeline). The reference runs use the in-memory pipeline because
    diffusers' `from_pretrained` of a Wan transformer needs `accelerate`; its weights are the saved ones."""
    _, diffusers = _torch()
    spec = tiny_spec(kind, full_vae)
    folder = Path(folder)
    build = folder / ".tokenizer-build"
    parts = dict(
        tokenizer=_tokenizer(build),
        text_encoder=random_reference_t5(spec.t5, seed),
        vae=random_reference_vae(spec.vae, seed=seed),
        scheduler=diffusers.UniPCMultistepScheduler(
            prediction_type="flow_prediction",
            use_flow_sigmas=True,
            num_train_timesteps=1000,
            flow_shift=spec.flow_shift,
        ),
        transformer=random_reference_dit(spec.dit, seed=seed + 1, official_time=False),
    )
    if kind == "ti2v-5b":
        pipe = diffusers.WanPipeline(**parts, expand_timesteps=True)
    else:
        parts["transformer_2"] = random_reference_dit(spec.dit, seed=seed + 2, official_time=False)
        cls = diffusers.WanPipeline if kind == "t2v-a14b" else diffusers.WanImageToVideoPipeline
        pipe = cls(**parts, boundary_ratio=spec.boundary_ratio)
    pipe.save_pretrained(folder)
    for f in build.iterdir():
        f.unlink()
    build.rmdir()
    pipe.set_progress_bar_config(disable=True)
    return spec, pipe


def with_image(pipe):
    """TI2V-5B with a first frame: diffusers' `WanImageToVideoPipeline(expand_timesteps=True)` over the
    parts of the folder's `WanPipeline` (how diffusers runs TI2V image-to-video)."""
    _, diffusers = _torch()
    out = diffusers.WanImageToVideoPipeline(
        tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, vae=pipe.vae, scheduler=pipe.scheduler,
        transformer=pipe.transformer, expand_timesteps=True,
    )  # fmt: skip
    out.set_progress_bar_config(disable=True)
    return out


def set_official_time(pipe, on: bool) -> None:
    """Swap the official float64 timestep sinusoid into the pipeline's transformers (or restore diffusers')."""
    _torch()
    from diffusers.models.embeddings import Timesteps

    for model in (pipe.transformer, getattr(pipe, "transformer_2", None)):
        if model is not None:
            dim = model.config.freq_dim
            proj = official_sinusoid(dim) if on else Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)
            model.condition_embedder.timesteps_proj = proj


def use_sigmas(pipe, sigmas: np.ndarray, solver: str) -> None:
    """Make `pipe` run exactly these σ (`[N + 1]`, last 0) whatever step count it is asked for: flow-matching
    Euler (`FlowMatchEulerDiscreteScheduler`, as DiffSynth's `FlowMatchScheduler` for the paper's preset) or
    the flow UniPC of the folder (e.g. on the official Wan2.2 grid)."""
    _, diffusers = _torch()
    if solver == "euler":
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0)
    elif solver == "unipc":
        scheduler = diffusers.UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=1.0)
    else:
        raise ValueError(f"unknown solver {solver!r}")
    set_timesteps = scheduler.set_timesteps
    custom = np.asarray(sigmas[:-1], np.float64 if solver == "unipc" else np.float32)
    scheduler.set_timesteps = lambda *args, device=None, **kwargs: set_timesteps(sigmas=custom, device=device)
    pipe.scheduler = scheduler


def run_diffusers(
    pipe,
    *,
    prompt: str,
    negative_prompt: str,
    noise: np.ndarray,
    frames: int,
    height: int,
    width: int,
    steps: int,
    guidance: float,
    guidance_2: float | None = None,
    image: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scheduler latent after the last step [1, F, h, w, C], decoded video [1, T, H, W, 3] in [−1, 1],
    timesteps) from one run of diffusers' pipeline started from `noise` (cos-jax layout [1, F, h, w, C]).

    The latent is taken by a step callback, i.e. before TI2V's final frame-0 overwrite (diffusers keeps
    frame 0 noisy in the scheduler and overwrites the model input instead); the video is the pipeline's
    own output (`output_type='np'`)."""
    torch, _ = _torch()
    from PIL import Image

    kwargs = dict(prompt=prompt, negative_prompt=negative_prompt, num_frames=frames, height=height, width=width,
                  num_inference_steps=steps, guidance_scale=guidance)  # fmt: skip
    if guidance_2 is not None:
        kwargs["guidance_scale_2"] = guidance_2
    if image is not None:
        kwargs["image"] = Image.fromarray(image)
    seen = {}

    def capture(pipeline, i, t, tensors):
        seen.setdefault("timesteps", []).append(float(t))
        seen["latent"] = tensors["latents"].numpy().copy()
        return {}

    latents = torch.from_numpy(np.ascontiguousarray(noise.transpose(0, 4, 1, 2, 3)))
    with torch.no_grad():
        video = pipe(**kwargs, latents=latents, output_type="np", callback_on_step_end=capture).frames
    return seen["latent"].transpose(0, 2, 3, 4, 1), np.asarray(video, np.float32) * 2 - 1, np.asarray(seen["timesteps"])
