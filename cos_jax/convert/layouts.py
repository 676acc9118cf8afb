"""Find the DiT components of a checkpoint on disk and their configs.

Recognised (wan22.md §3):
- official A14B folders: `high_noise_model/`, `low_noise_model/` (sharded safetensors + index + config.json);
- official TI2V-5B or any single-model folder: `config.json` + shards (+ index) or one safetensors file;
- diffusers pipelines: `model_index.json` (with `boundary_ratio`), `transformer/` (= high-noise expert)
  and `transformer_2/` (= low-noise expert), each with its `config.json`;
- single files, including repacks whose keys carry the `model.diffusion_model.` prefix, and `.pth` files.

Beside the DiT(s), folders may hold the VAE, the umT5 text encoder and its tokenizer (`extras`):
official `Wan2.1_VAE.pth` / `Wan2.2_VAE.pth`, `models_t5_umt5-xxl-enc-bf16.pth`, `google/umt5-xxl/`;
diffusers `vae/`, `text_encoder/`, `tokenizer/`.
"""

from __future__ import annotations

import dataclasses
import json
import os

from cos_jax.convert.dit_config import WrongModelKindError, config_from_shapes, known_from_json
from cos_jax.convert.dit_keys import SINGLE_FILE_PREFIX, KeyMismatchError, Layout, detect_layout
from cos_jax.convert.sources import TensorSource, open_tensors
from cos_jax.wan.config import DiTConfig

# official expert boundaries when the checkpoint does not say (wan22.md §3)
DEFAULT_BOUNDARY = {"t2v": 0.875, "i2v": 0.9}


@dataclasses.dataclass
class Component:
    """One DiT to convert: where its tensors are and what its config.json says (if there is one)."""

    name: str  # "dit", "high_noise" or "low_noise"
    path: str
    config_json: dict | None = None


@dataclasses.dataclass
class CheckpointSet:
    root: str
    kind: str  # "diffusers_pipeline", "official_a14b", "folder" (one model) or "file"
    components: dict[str, Component]  # the DiT(s)
    boundary_ratio: float | None = None
    extras: dict[str, Component] = dataclasses.field(default_factory=dict)  # "vae", "text_encoder"
    tokenizer: str | None = None  # a folder holding tokenizer.json


# What an official folder holds beside the DiT(s) (wan22.md §3), and what the errors say was looked for.
OFFICIAL_VAES = ("Wan2.1_VAE.pth", "Wan2.2_VAE.pth")
OFFICIAL_T5 = "models_t5_umt5-xxl-enc-bf16.pth"
OFFICIAL_TOKENIZER = os.path.join("google", "umt5-xxl")
LOOKED_FOR = {
    "vae": f"{' / '.join(OFFICIAL_VAES)} (official) or vae/ (diffusers)",
    "text_encoder": f"{OFFICIAL_T5} (official) or text_encoder/ (diffusers)",
    "tokenizer": f"{OFFICIAL_TOKENIZER}/ (official) or tokenizer/ (diffusers), holding tokenizer.json",
}


def _official_extras(path: str) -> tuple[dict[str, Component], str | None]:
    extras = {}
    vaes = [f for f in OFFICIAL_VAES if os.path.isfile(os.path.join(path, f))]
    if len(vaes) > 1:
        raise FileExistsError(f"{path}: both {vaes[0]} and {vaes[1]}; keep the one this model uses")
    if vaes:
        extras["vae"] = Component("vae", os.path.join(path, vaes[0]))
    if os.path.isfile(os.path.join(path, OFFICIAL_T5)):
        extras["text_encoder"] = Component("text_encoder", os.path.join(path, OFFICIAL_T5))
    tokenizer = os.path.join(path, OFFICIAL_TOKENIZER)
    return extras, tokenizer if os.path.isdir(tokenizer) else None


def _diffusers_extras(path: str) -> tuple[dict[str, Component], str | None]:
    extras = {}
    for name, sub in (("vae", "vae"), ("text_encoder", "text_encoder")):
        if os.path.isdir(os.path.join(path, sub)):
            extras[name] = _folder_component(name, os.path.join(path, sub))
    tokenizer = os.path.join(path, "tokenizer")
    return extras, tokenizer if os.path.isdir(tokenizer) else None


def _read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _folder_component(name: str, folder: str) -> Component:
    return Component(name, folder, _read_json(os.path.join(folder, "config.json")))


def discover(path: str | os.PathLike) -> CheckpointSet:
    """The components under `path` (a folder of one of the layouts above, or a single file)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    if os.path.isfile(path):
        sibling = os.path.join(os.path.dirname(path), "config.json")
        return CheckpointSet(path, "file", {"dit": Component("dit", path, _read_json(sibling))})
    index = _read_json(os.path.join(path, "model_index.json"))
    has = lambda sub: os.path.isdir(os.path.join(path, sub))
    if index is not None or has("transformer"):
        if not has("transformer"):
            raise FileNotFoundError(f"{path}: a diffusers pipeline folder without transformer/")
        comps = {"dit": _folder_component("dit", os.path.join(path, "transformer"))}
        if has("transformer_2"):
            comps = {
                "high_noise": _folder_component("high_noise", os.path.join(path, "transformer")),
                "low_noise": _folder_component("low_noise", os.path.join(path, "transformer_2")),
            }
        boundary = (index or {}).get("boundary_ratio")
        return CheckpointSet(path, "diffusers_pipeline", comps, boundary, *_diffusers_extras(path))
    if has("high_noise_model") or has("low_noise_model"):
        missing = [s for s in ("high_noise_model", "low_noise_model") if not has(s)]
        if missing:
            raise FileNotFoundError(f"{path}: an A14B checkpoint needs both experts; {missing[0]}/ is missing")
        comps = {
            "high_noise": _folder_component("high_noise", os.path.join(path, "high_noise_model")),
            "low_noise": _folder_component("low_noise", os.path.join(path, "low_noise_model")),
        }
        return CheckpointSet(path, "official_a14b", comps, None, *_official_extras(path))
    return CheckpointSet(path, "folder", {"dit": _folder_component("dit", path)}, None, *_official_extras(path))


def _wrong_kind_hint(names) -> str | None:
    names = list(names)
    if any(n.startswith(("encoder.", "decoder.", "conv1.", "quant_conv.")) for n in names):
        return "this looks like a VAE checkpoint"
    if any(n.startswith(("token_embedding.", "shared.", "encoder.block.")) for n in names):
        return "this looks like a umT5 text-encoder checkpoint"
    return None


def resolve_component(
    comp: Component, layout: Layout | None = None, config: DiTConfig | None = None
) -> tuple[TensorSource, Layout, DiTConfig]:
    """Open a component's tensors and settle its layout and config (explicit arguments win)."""
    source = open_tensors(comp.path)
    names = [k.removeprefix(SINGLE_FILE_PREFIX) for k in source.infos]
    if layout is None:
        try:
            layout = detect_layout(names)
        except KeyMismatchError:
            hint = _wrong_kind_hint(names)
            if hint:
                raise WrongModelKindError(
                    f"{comp.path}: {hint}, not a Wan DiT; VAEs and text encoders convert as parts of an official or "
                    "diffusers model folder: point SRC at that folder"
                ) from None
            raise
    if config is None:
        known = known_from_json(comp.config_json) if comp.config_json else {}
        shapes = {k.removeprefix(SINGLE_FILE_PREFIX): i.shape for k, i in source.infos.items()}
        try:
            config = config_from_shapes(shapes, layout, **known)
        except KeyError as err:
            raise KeyMismatchError(
                f"{comp.path}: {layout} layout: tensor {err} is missing; cannot read the config"
            ) from None
    return source, layout, config
