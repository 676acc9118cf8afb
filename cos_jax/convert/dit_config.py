"""The `DiTConfig` of a checkpoint: from its `config.json` (official or diffusers names), from its tensor
shapes, or both cross-checked; and the `config.json` contents for the other direction (wan22.md §2.1, §8).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from cos_jax.convert.dit_keys import DIT_RULES, Layout
from cos_jax.wan.config import PRESETS, DiTConfig

OFFICIAL_CLASS = "WanModel"
DIFFUSERS_CLASS = "WanTransformer3DModel"
RELEASED_HEAD_DIM = 128
# in/out channels -> model_type for configs that do not say (diffusers configs, bare files)
_MODEL_TYPE_BY_CHANNELS = {(16, 16): "t2v", (36, 16): "i2v", (48, 48): "ti2v"}


class WrongModelKindError(ValueError):
    """The checkpoint is not a Wan2.2 DiT (a VAE, a text encoder, Wan2.1 I2V with CLIP, S2V, ...)."""


def _source(target: str, layout: Layout) -> str:
    return next(r.source(layout) for r in DIT_RULES if r.target == target)


def config_from_shapes(shapes: Mapping[str, tuple[int, ...]], layout: Layout, **known) -> DiTConfig:
    """Infer a config from tensor shapes (names without the single-file prefix).

    `num_heads` and `model_type` cannot be seen in shapes: pass them in `known`, otherwise the released
    head_dim 128 and the in/out channel counts decide.
    """

    def shape(target: str, layer: int | None = None) -> tuple[int, ...]:
        name = _source(target, layout)
        return shapes[name.format(i=0) if layer is not None else name]

    dim, in_dim, *patch = shape("patch_kernel")
    modulation = re.compile(re.escape(_source("blocks.modulation", layout)).replace(r"\{i\}", r"\d+") + "$")
    num_layers = sum(1 for k in shapes if modulation.match(k))
    head_out = shape("head.kernel")[0]
    inferred = dict(
        dim=dim,
        in_dim=in_dim,
        patch_size=tuple(patch),
        num_layers=num_layers,
        ffn_dim=shape("blocks.ffn_up.kernel", 0)[0],
        text_dim=shape("text_in.kernel")[1],
        freq_dim=shape("time_in.kernel")[1],
        out_dim=head_out // (patch[0] * patch[1] * patch[2]),
    )
    for key, value in known.items():
        if key in inferred and inferred[key] != value:
            raise WrongModelKindError(f"config.json says {key}={value} but the tensors have {key}={inferred[key]}")
    merged = {**inferred, **known}
    if "num_heads" not in merged:
        if dim % RELEASED_HEAD_DIM:
            raise WrongModelKindError(
                f"dim={dim} is not a multiple of the released head_dim {RELEASED_HEAD_DIM}, so num_heads is unknown; "
                "put a config.json (num_heads) beside the checkpoint or pass a config/preset"
            )
        merged["num_heads"] = dim // RELEASED_HEAD_DIM
    if "model_type" not in merged:
        merged["model_type"] = _MODEL_TYPE_BY_CHANNELS.get((merged["in_dim"], merged["out_dim"]))
        if merged["model_type"] is None:
            raise WrongModelKindError(
                f"cannot tell t2v/i2v/ti2v from in_dim={merged['in_dim']}, out_dim={merged['out_dim']}; "
                "give a config.json with model_type or choose a preset"
            )
    fields = {f.name for f in dataclasses.fields(DiTConfig)}
    return DiTConfig(**{k: v for k, v in merged.items() if k in fields})


def known_from_json(config: Mapping) -> dict:
    """The `DiTConfig` fields a `config.json` states, in cos-jax names; rejects other model kinds."""
    cls = config.get("_class_name")
    if cls not in (None, OFFICIAL_CLASS, DIFFUSERS_CLASS):
        raise WrongModelKindError(
            f"config.json describes a {cls}, not a Wan DiT ({OFFICIAL_CLASS} / {DIFFUSERS_CLASS})"
        )
    if "num_attention_heads" in config:  # diffusers names
        if config.get("image_dim") or config.get("added_kv_proj_dim"):
            raise WrongModelKindError(
                "this is a Wan2.1 I2V DiT (image_dim / added_kv_proj_dim set); cos-jax has Wan2.2"
            )
        known = dict(
            num_heads=config["num_attention_heads"],
            dim=config["num_attention_heads"] * config["attention_head_dim"],
            in_dim=config.get("in_channels"),
            out_dim=config.get("out_channels"),
            rope_max_positions=config.get("rope_max_seq_len"),
        )
    else:
        if config.get("model_type") not in (None, "t2v", "i2v", "ti2v"):
            raise WrongModelKindError(f"model_type={config['model_type']!r} is not supported (t2v, i2v, ti2v)")
        known = {k: config.get(k) for k in ("model_type", "dim", "num_heads", "in_dim", "out_dim", "text_len")}
    for k in ("ffn_dim", "num_layers", "freq_dim", "text_dim", "eps"):
        known[k] = config.get(k)
    if config.get("patch_size") is not None:
        known["patch_size"] = tuple(config["patch_size"])
    return {k: v for k, v in known.items() if v is not None}


def match_preset(cfg: DiTConfig) -> str | None:
    """The name of the preset equal to `cfg`, if any."""
    return next((name for name, p in PRESETS.items() if p == cfg), None)


def official_config_json(cfg: DiTConfig) -> dict:
    """What an official `config.json` holds for this config."""
    keys = (
        "model_type",
        "dim",
        "ffn_dim",
        "freq_dim",
        "num_heads",
        "num_layers",
        "in_dim",
        "out_dim",
        "text_len",
        "eps",
    )
    return {"_class_name": OFFICIAL_CLASS, **{k: getattr(cfg, k) for k in keys}}


def config_to_dict(cfg: DiTConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(d: Mapping) -> DiTConfig:
    return DiTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
