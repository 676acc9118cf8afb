"""VBVR-format training samples for LoRA fine-tuning a Wan2.2 I2V pipeline.

A sample folder holds `first_frame.png` (the condition), `prompt.txt` and `ground_truth.mp4` (the target
video), VBVR's layout and the same as a bench sample (`cos-jax tasks generate`). `encode_samples` turns the
folders under a root into the latent training set {x0, y, context} through the pipeline's VAE and umT5:
x0 = VAE(video), y = I2V-A14B's [mask | VAE(first frame, zero frames)], context = umT5(prompt); the LoRA
step (`train.lora.latent_lora_step`) reads those.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from cos_jax.errors import UsageError
from cos_jax.pipelines.components import Components
from cos_jax.pipelines.wan import encode_prompts, i2v_condition
from cos_jax.tasks.bench import read_first_frame, read_prompt
from cos_jax.tasks.video_io import read_video
from cos_jax.wan.codec import to_unit_range
from cos_jax.wan.vae import vae_encode

SAMPLE_FILES = ("first_frame.png", "prompt.txt", "ground_truth.mp4")


def sample_folders(root: str | os.PathLike) -> list[Path]:
    """Every folder under `root` (any depth) holding `first_frame.png`, sorted; each must hold all of
    `SAMPLE_FILES` (a UsageError names the first folder and file missing)."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"training data folder {root} does not exist")
    folders = sorted(p.parent for p in root.rglob("first_frame.png"))
    if not folders:
        raise UsageError(f"no sample folders under {root}: each needs {', '.join(SAMPLE_FILES)}")
    for folder in folders:
        for name in SAMPLE_FILES:
            if not (folder / name).is_file():
                raise UsageError(f"sample folder {folder} has no {name}; a VBVR sample holds {', '.join(SAMPLE_FILES)}")
    return folders


def _clip(folder: Path, frames: int | None, stride: int, multiple: tuple[int, int]) -> np.ndarray:
    """The first `frames` frames of the target video (default: all), checked against the pipeline."""
    video = read_video(folder / "ground_truth.mp4")
    t = frames or video.shape[0]
    if t > video.shape[0] or (t - 1) % stride:
        raise UsageError(f"{folder / 'ground_truth.mp4'}: {video.shape[0]} frames, cannot take {t}; "
                         f"pass --frames as {stride}n+1 ≤ {video.shape[0]}")  # fmt: skip
    h, w = video.shape[1:3]
    if h % multiple[0] or w % multiple[1]:
        raise UsageError(
            f"{folder}: video {h}x{w} is not a multiple of {multiple[0]}x{multiple[1]}; resize the samples"
        )
    first = read_first_frame(folder)
    if first.shape != video.shape[1:]:
        raise UsageError(
            f"{folder}: first_frame.png is {first.shape[:2]}, the video {video.shape[1:3]}; they must match"
        )
    return np.concatenate([first[None], video[1:t]])


def encode_samples(
    components: Components, root: str | os.PathLike, frames: int | None = None, progress: bool = True
) -> dict[str, np.ndarray]:
    """The latent training set of the sample folders under `root`: {x0 [N, F, h, w, C], y [N, F, h, w,
    Cy], context [N, L, D]} (float32). Every sample must give the same video size; frame 0 is
    `first_frame.png`, so x0 and y see the same condition image."""
    if components.model_type != "i2v":
        raise UsageError(f"{components.source}: a {components.model_type} pipeline; LoRA data needs an I2V one")
    stride, multiple = components.vae_config.temporal_stride, components.size_multiple
    x0, y, prompts, shape = [], [], [], None
    for folder in tqdm(sample_folders(root), desc="encoding samples", unit="sample", disable=not progress):
        clip = _clip(folder, frames, stride, multiple)
        if shape is not None and clip.shape != shape:
            raise UsageError(f"{folder}: video {clip.shape} differs from the first sample's {shape}; pass --frames")
        shape = clip.shape
        video = to_unit_range(jnp.asarray(clip))[None]
        x0.append(np.asarray(vae_encode(components.vae, video))[0])
        y.append(np.asarray(i2v_condition(components, video[:, 0], clip.shape[0]))[0])
        prompts.append(read_prompt(folder))
    context = encode_prompts(components, prompts)
    return {"x0": np.stack(x0), "y": np.stack(y), "context": np.asarray(context, np.float32)}
