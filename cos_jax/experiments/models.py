"""The models an experiment runs on, behind one small interface: the toy world, an I2V folder, or a random
I2V-A14B (`RANDOM_MODELS`: the full-size shape with random weights, for throughput runs without a download,
and a tiny one for tests and dry runs).

Both turn task samples (first frame + prompt) into per-world `Conditions`, decode latents to uint8 videos
and say which pixel frames a latent frame holds. Everything else an experiment does goes through
`cos_jax.sampling.sample` and plans (`cos_jax.probes`), so the same experiment code runs on the toy on a
laptop and on a converted Wan2.2 I2V-A14B checkpoint on a GPU.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from cos_jax.experiments.base import ExperimentError
from cos_jax.sampling import Conditions, SamplingConfig, sampling_preset

if TYPE_CHECKING:
    from cos_jax.pipelines.components import Components

TOY_KINDS = ("toy", "toy-a14b")
# --model random:NAME -> what it is: Wan2.2 I2V-A14B's structure with random weights and no checkpoint folder
RANDOM_MODELS = {
    "random:i2v-a14b": "full size (two 14B bf16 experts, umT5-XXL, the Wan2.1 VAE)",
    "random:tiny-i2v-a14b": "tiny (the test pipelines' configs; fast on CPU)",
}
RANDOM_WEIGHTS = "random (rbg PRNG, experts seed 0/1)"
MODEL_CHOICES = (*TOY_KINDS, *RANDOM_MODELS)
TEMPORAL_STRIDE = 4  # pixel frames per latent frame (frame 0 alone), for the toy codec and the Wan VAEs


@dataclasses.dataclass
class ExperimentModel:
    """A model ready for experiments. `kind`: "toy", "toy-a14b" (the two-expert toy), "i2v-a14b" (two
    experts) or "i2v" (one expert)."""

    name: str
    kind: str
    experts: tuple
    resolution: int
    frames: int
    latent_shape: tuple[int, int, int, int]
    backend: Any  # ToyModel + spec, or pipeline Components
    weights: str | None = None  # fingerprint of the weights where cheap to take (the shipped toys), or "random …"

    @property
    def num_layers(self) -> int:
        return self.experts[0].config.num_layers

    @property
    def is_toy(self) -> bool:
        return self.kind in TOY_KINDS

    @property
    def dit(self):
        """What `sample` takes: one DiT or the (high-noise, low-noise) pair."""
        return self.experts if len(self.experts) == 2 else self.experts[0]

    def sampling(self, config: dict) -> SamplingConfig:
        """The paper's sampler (DiffSynth grid, Euler) with the config's steps, shift, CFG and boundary."""
        two = len(self.experts) == 2
        return sampling_preset("paper").replace(
            steps=config["steps"], shift=config["shift"], guidance_high=config["guidance"],
            guidance_low=config["guidance"], boundary=config["boundary"] if two else None,
        )  # fmt: skip

    def conditions(self, first_frames: np.ndarray, prompts: list[str], policy: str) -> Conditions:
        """Per-world conditions from uint8 first frames [N, H, W, 3] and one prompt per world."""
        if self.is_toy:
            from cos_jax.pipelines.toy import toy_conditions

            model, spec = self.backend
            return toy_conditions(model, spec, first_frames, prompts)
        from cos_jax.pipelines import wan

        comps = self.backend
        unique = list(dict.fromkeys(prompts))
        emb = wan.encode_prompts(comps, [*unique, wan.NEGATIVE_PROMPT], policy=policy)
        index = {p: i for i, p in enumerate(unique)}
        images = jnp.asarray(first_frames, jnp.float32) / 127.5 - 1.0
        return Conditions(
            context=jnp.asarray(emb[[index[p] for p in prompts]]),
            negative=jnp.asarray(emb[-1:]),
            y=wan.i2v_condition(comps, images, self.frames),
        )

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Latents [N, F, h, w, C] -> uint8 videos [N, T, H, W, 3]."""
        if self.is_toy:
            from cos_jax.pipelines.toy import decode_video

            return decode_video(self.backend[1], latents)
        from cos_jax.pipelines.wan import decode_latents

        return decode_latents(self.backend, np.asarray(latents))

    def pixel_frames(self, latent_frame: int) -> list[int]:
        """The pixel frames a latent frame holds (frame 0 alone, then 4 each)."""
        if latent_frame == 0:
            return [0]
        return list(range(TEMPORAL_STRIDE * (latent_frame - 1) + 1, TEMPORAL_STRIDE * latent_frame + 1))

    def with_frames(self, frames: int) -> ExperimentModel:
        """The same model run at another frame count (4n+1)."""
        if frames == self.frames:
            return self
        if self.is_toy:
            model, spec = self.backend
            spec = dataclasses.replace(spec, frames=frames)
            return dataclasses.replace(self, frames=frames, latent_shape=spec.latent_shape, backend=(model, spec))
        from cos_jax.pipelines import wan

        shape = wan.latent_shape(self.backend, frames, self.resolution, self.resolution)
        return dataclasses.replace(self, frames=frames, latent_shape=shape)

    def describe(self) -> dict:
        cfg = self.experts[0].config
        return {
            "name": self.name,
            "kind": self.kind,
            "experts": len(self.experts),
            "layers": cfg.num_layers,
            "dim": cfg.dim,
            "resolution": self.resolution,
            "frames": self.frames,
            "latent_shape": list(self.latent_shape),
        } | ({"weights": self.weights} if self.weights else {})


def load_model(source: str, resolution: int = 0, frames: int = 0, vae_precision: str = "fp32") -> ExperimentModel:
    """``"toy"`` (the shipped toy world), ``"toy-a14b"`` (its two-expert version), ``"random:i2v-a14b"`` /
    ``"random:tiny-i2v-a14b"`` (`RANDOM_MODELS`) or a model folder; `resolution` / `frames` 0 take the model's
    own. `vae_precision` ("fp32", "tf32") is the VAE arithmetic of a folder or random model (the toys have no
    VAE)."""
    if source in TOY_KINDS:
        from cos_jax.pipelines.toy import load_toy, load_toy_a14b, shipped_fingerprint

        model, spec = load_toy() if source == "toy" else load_toy_a14b()
        if resolution not in (0, spec.resolution) or frames not in (0, spec.frames):
            raise ExperimentError(
                f"the toy world runs at {spec.resolution}x{spec.resolution}, {spec.frames} frames; "
                f"got resolution={resolution}, frames={frames} (set them to 0)"
            )
        experts = model.dit if isinstance(model.dit, tuple) else (model.dit,)
        return ExperimentModel(source, source, experts, spec.resolution, spec.frames, spec.latent_shape,
                               (model, spec), shipped_fingerprint(source == "toy-a14b"))  # fmt: skip
    if source.startswith("random:"):
        comps = random_components(source, vae_precision)
        return _i2v_model(source, comps, resolution, frames, RANDOM_WEIGHTS)
    return _load_folder(source, resolution, frames, vae_precision)


def random_components(source: str, vae_precision: str = "fp32") -> Components:
    """The pipeline of a `RANDOM_MODELS` source (`pipelines.components.random_components`: bf16 experts and
    umT5, expert switch at 0.875), full size or at the test pipelines' tiny size."""
    from cos_jax.pipelines import components
    from cos_jax.pipelines.wan_reference import tiny_spec
    from cos_jax.wan.config import preset
    from cos_jax.wan.t5 import UMT5_XXL
    from cos_jax.wan.vae import vae_preset
    from cos_jax.wan.vae.model import lax_precision

    if source not in RANDOM_MODELS:
        choices = "; ".join(f"{name}: {what}" for name, what in RANDOM_MODELS.items())
        raise ExperimentError(f"unknown random model {source!r}; choose {choices}")
    try:
        lax_precision(vae_precision)  # a bad name is refused before anything is built
    except ValueError as err:
        raise ExperimentError(str(err)) from None
    if source == "random:i2v-a14b":
        configs = (preset("i2v_a14b"), vae_preset("wan21"), UMT5_XXL)
    else:
        tiny = tiny_spec("i2v-a14b")
        configs = (tiny.dit, tiny.vae, tiny.t5)
    return components.random_components(*configs, vae_precision=vae_precision, source=source)


def _load_folder(source: str, resolution: int, frames: int, vae_precision: str) -> ExperimentModel:
    from cos_jax.pipelines import wan
    from cos_jax.pipelines.components import load_components

    path = Path(source)
    if not path.exists():
        quoted = ", ".join(f"'{m}'" for m in MODEL_CHOICES)
        raise ExperimentError(
            f"model {source!r} is neither {quoted} nor an existing folder; pass --model {', '.join(MODEL_CHOICES)} "
            "or DIR"
        )
    try:
        comps = load_components(path, vae_precision=vae_precision)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise ExperimentError(f"cannot load model folder {source}: {err}") from None
    if comps.model_type != "i2v":
        raise ExperimentError(
            f"{source} is a {wan.MODEL_NAMES[comps.model_type]} model; the experiments run image-to-video models "
            "(I2V-A14B) or the toy"
        )
    return _i2v_model(str(source), comps, resolution, frames)


def _i2v_model(
    name: str, comps: Components, resolution: int, frames: int, weights: str | None = None
) -> ExperimentModel:
    """An I2V model from its components: 480x480, 81 frames unless given; "i2v-a14b" with two experts."""
    from cos_jax.pipelines import wan

    resolution = resolution or 480
    frames = frames or 81
    try:
        shape = wan.latent_shape(comps, frames, resolution, resolution)
    except ValueError as err:
        raise ExperimentError(f"resolution/frames: {err}") from None
    kind = "i2v-a14b" if len(comps.experts) == 2 else "i2v"
    return ExperimentModel(name, kind, tuple(comps.experts), resolution, frames, shape, comps, weights)


def take_worlds(cond: Conditions, index: np.ndarray, total: int) -> Conditions:
    """The conditions of worlds `index` (leaves with a per-world leading axis of `total` are gathered)."""
    return jax.tree.map(lambda a: a[index] if a.ndim and a.shape[0] == total and total > 1 else a, cond)
