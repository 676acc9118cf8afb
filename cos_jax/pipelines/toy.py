"""Image-to-video with the toy world: first frames + prompts → `Conditions` → trajectory → videos."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from cos_jax.probes.plan import Plan
from cos_jax.sampling import Conditions, SamplingConfig, Trajectory, sample, sampling_preset
from cos_jax.wan.codec import to_uint8, to_unit_range
from cos_jax.wan.dit import WanDiT
from cos_jax.wan.toy import ToyModel, ToySpec, init_toy

NEGATIVE_PROMPT = ""
SHIPPED_WEIGHTS = "toy_ema.npz"
SHIPPED_LORAS = ("toy_a14b_high_lora.safetensors", "toy_a14b_low_lora.safetensors")  # (high noise, low noise)


def load_toy(weights: str | None = None) -> tuple[ToyModel, ToySpec]:
    """The toy world shipped in the package (EMA weights), or one from a weights .npz."""
    from importlib import resources

    from cos_jax.train.checkpoint import load_weights

    spec = ToySpec()
    path = weights or resources.files("cos_jax") / "assets" / "toy" / SHIPPED_WEIGHTS
    with resources.as_file(path) if weights is None else nullcontext(path) as file:
        model = load_weights(file, "ema", init_toy(spec))
    return model, spec


def files_fingerprint(blobs: Sequence[bytes]) -> str:
    """A short sha256 of files' bytes, in order: how records name the weights they ran."""
    digest = hashlib.sha256()
    for blob in blobs:
        digest.update(blob)
    return "sha256:" + digest.hexdigest()[:16]


@functools.cache
def shipped_fingerprint(two_experts: bool = False) -> str:
    """The fingerprint of the shipped toy's files (its weights, and the LoRA pair for `toy-a14b`): experiment
    records name the exact weights they ran, and a resumed run refuses weights that changed under it. Read
    once per process (the package's files do not change under it)."""
    from importlib import resources

    folder = resources.files("cos_jax") / "assets" / "toy"
    names = (SHIPPED_WEIGHTS, *SHIPPED_LORAS) if two_experts else (SHIPPED_WEIGHTS,)
    return files_fingerprint([(folder / name).read_bytes() for name in names])


def lora_pair_label(loras: Sequence[str] | None) -> str:
    """How a record names the LoRA pair it ran on the shipped toy: the shipped pair, or the given (high, low)
    files by name and content (not by path, which differs between machines)."""
    if loras is None:
        return f"shipped ({shipped_fingerprint(two_experts=True)})"
    names = ", ".join(Path(f).name for f in loras)
    return f"given: {names} ({files_fingerprint([Path(f).read_bytes() for f in loras])})"


@dataclasses.dataclass(frozen=True)
class ToyPair:
    """The two-expert toy (`toy-a14b`): the toy's text encoder and a (high-noise, low-noise) DiT pair, each
    the shipped toy with its own LoRA merged; sampled like I2V-A14B, switching experts at t < 875."""

    dit: tuple[WanDiT, WanDiT]
    text: nnx.Module


def load_toy_a14b(weights: str | None = None, loras: tuple[str, str] | None = None) -> tuple[ToyPair, ToySpec]:
    """The two-expert toy: the toy of `weights` (default: the shipped one) with the (high, low) LoRA files
    `loras` (default: the shipped pair) merged as `cos-jax convert --lora-high/--lora-low` merges them."""
    from importlib import resources

    from cos_jax.convert.lora import load_lora, merge_lora

    model, spec = load_toy(weights)
    if loras is None:
        folder = resources.files("cos_jax") / "assets" / "toy"
        with resources.as_file(folder / SHIPPED_LORAS[0]) as high, resources.as_file(folder / SHIPPED_LORAS[1]) as low:
            return load_toy_a14b(weights, (str(high), str(low)))
    experts = tuple(merge_lora(model.dit, load_lora(path, spec.dit)) for path in loras)
    return ToyPair(experts, model.text), spec


def toy_sampling(steps: int = 50, guidance: float = 5.0, two_experts: bool = False) -> SamplingConfig:
    """The paper preset scaled to the toy: Euler, DiffSynth grid, shift 5, CFG; one expert, or two switching
    at t < 875 as the paper's sampler does (step 21 of 50)."""
    return sampling_preset("paper").replace(steps=steps, guidance_high=guidance, guidance_low=guidance,
                                            boundary=875 if two_experts else None)  # fmt: skip


def encode_prompts(model: ToyModel, spec: ToySpec, prompts: Sequence[str], policy: str = "fp32") -> jnp.ndarray:
    ids, mask = spec.tokenizer(list(prompts))
    return model.text(jnp.asarray(ids), jnp.asarray(mask), policy=policy)


def toy_conditions(model: ToyModel, spec: ToySpec, first_frames: np.ndarray, prompts: Sequence[str]) -> Conditions:
    """Per-world conditions from uint8 first frames [W, H, W, 3] and one prompt per world."""
    if first_frames.shape[1:] != (spec.resolution, spec.resolution, 3):
        raise ValueError(f"first frames must be [W, {spec.resolution}, {spec.resolution}, 3] uint8, "
                         f"got {first_frames.shape}")  # fmt: skip
    frames = to_unit_range(jnp.asarray(first_frames))
    return Conditions(
        context=encode_prompts(model, spec, prompts),
        negative=encode_prompts(model, spec, [NEGATIVE_PROMPT]),
        y=spec.codec.i2v_condition(frames, spec.frames),
    )


def generate(
    model: ToyModel,
    spec: ToySpec,
    first_frames: np.ndarray,
    prompts: Sequence[str],
    seeds: Sequence[int],
    config: SamplingConfig | None = None,
    plan: Plan | None = None,
    keep_steps: Sequence[int] | None = None,
    progress: bool = False,
) -> Trajectory:
    """One world per (first frame, prompt, seed); x̂0 is kept at `keep_steps` (default all)."""
    if not len(first_frames) == len(prompts) == len(seeds):
        raise ValueError(
            f"got {len(first_frames)} frames, {len(prompts)} prompts, {len(seeds)} seeds; one each per world"
        )
    cond = toy_conditions(model, spec, np.asarray(first_frames), prompts)
    config = config or toy_sampling(two_experts=isinstance(model.dit, tuple))
    return sample(model.dit, cond, config, spec.latent_shape, seeds=list(seeds), plan=plan,
                  keep_steps=keep_steps, progress=progress)  # fmt: skip


def decode_video(spec: ToySpec, latent: np.ndarray) -> np.ndarray:
    """Latents [..., F, h, w, C] → uint8 videos [..., T, H, W, 3]."""
    lead = latent.shape[:-4]
    flat = jnp.asarray(latent).reshape(-1, *latent.shape[-4:])
    return np.asarray(to_uint8(spec.codec.decode(flat))).reshape(
        *lead, spec.frames, spec.resolution, spec.resolution, 3
    )
