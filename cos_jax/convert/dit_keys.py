"""Declarative key tables between PyTorch DiT checkpoints and cos-jax parameters.

One row per tensor family: the diffusers name, the official `WanModel` name, the cos-jax parameter path
and a transform. `{i}` stands for the block index; block tensors are stacked on a leading layer axis.
The same table converts in both directions (`to_cos_params`, `from_cos_params`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Literal

import numpy as np

from cos_jax.wan.config import DiTConfig

Layout = Literal["diffusers", "official"]
LAYOUTS = ("diffusers", "official")
SINGLE_FILE_PREFIX = "model.diffusion_model."


@dataclasses.dataclass(frozen=True)
class KeyRule:
    diffusers: str
    official: str
    target: str  # dotted cos-jax path
    transform: Literal["linear", "conv_patch", "squeeze0", "copy"]

    def source(self, layout: Layout) -> str:
        return self.diffusers if layout == "diffusers" else self.official


def _linear(diffusers: str, official: str, target: str) -> list[KeyRule]:
    return [
        KeyRule(f"{diffusers}.weight", f"{official}.weight", f"{target}.kernel", "linear"),
        KeyRule(f"{diffusers}.bias", f"{official}.bias", f"{target}.bias", "copy"),
    ]


def _attention(diffusers: str, official: str, target: str) -> list[KeyRule]:
    rules = []
    for d, o, t in (("to_q", "q", "q"), ("to_k", "k", "k"), ("to_v", "v", "v"), ("to_out.0", "o", "o")):
        rules += _linear(f"{diffusers}.{d}", f"{official}.{o}", f"{target}.{t}")
    for n in ("norm_q", "norm_k"):
        rules.append(KeyRule(f"{diffusers}.{n}.weight", f"{official}.{n}.weight", f"{target}.{n}.scale", "copy"))
    return rules


DIT_RULES: tuple[KeyRule, ...] = (
    KeyRule("patch_embedding.weight", "patch_embedding.weight", "patch_kernel", "conv_patch"),
    KeyRule("patch_embedding.bias", "patch_embedding.bias", "patch_bias", "copy"),
    *_linear("condition_embedder.text_embedder.linear_1", "text_embedding.0", "text_in"),
    *_linear("condition_embedder.text_embedder.linear_2", "text_embedding.2", "text_out"),
    *_linear("condition_embedder.time_embedder.linear_1", "time_embedding.0", "time_in"),
    *_linear("condition_embedder.time_embedder.linear_2", "time_embedding.2", "time_out"),
    *_linear("condition_embedder.time_proj", "time_projection.1", "time_proj"),
    KeyRule("blocks.{i}.scale_shift_table", "blocks.{i}.modulation", "blocks.modulation", "squeeze0"),
    *_attention("blocks.{i}.attn1", "blocks.{i}.self_attn", "blocks.self_attn"),
    *_attention("blocks.{i}.attn2", "blocks.{i}.cross_attn", "blocks.cross_attn"),
    # diffusers' norm2 is the official norm3: the affine LayerNorm before cross-attention.
    KeyRule("blocks.{i}.norm2.weight", "blocks.{i}.norm3.weight", "blocks.norm_cross.scale", "copy"),
    KeyRule("blocks.{i}.norm2.bias", "blocks.{i}.norm3.bias", "blocks.norm_cross.bias", "copy"),
    *_linear("blocks.{i}.ffn.net.0.proj", "blocks.{i}.ffn.0", "blocks.ffn_up"),
    *_linear("blocks.{i}.ffn.net.2", "blocks.{i}.ffn.2", "blocks.ffn_down"),
    KeyRule("scale_shift_table", "head.modulation", "head_modulation", "squeeze0"),
    *_linear("proj_out", "head.head", "head"),
)


class KeyMismatchError(KeyError):
    """Source tensors and the model's parameters do not correspond one to one."""


def detect_layout(keys) -> Layout:
    """'diffusers' or 'official' from the key names (a single-file prefix is allowed)."""
    names = {k.removeprefix(SINGLE_FILE_PREFIX) for k in keys}
    if "condition_embedder.time_proj.weight" in names:
        return "diffusers"
    if "time_projection.1.weight" in names:
        return "official"
    raise KeyMismatchError(
        "cannot tell the checkpoint layout: neither 'condition_embedder.time_proj.weight' (diffusers) nor "
        "'time_projection.1.weight' (official) is present; pass layout= explicitly"
    )


def _forward(rule: KeyRule, x: np.ndarray) -> np.ndarray:
    if rule.transform == "linear":
        return x.T
    if rule.transform == "conv_patch":
        return x.transpose(2, 3, 4, 1, 0)  # (O, I, t, h, w) -> (t, h, w, I, O)
    if rule.transform == "squeeze0":
        return x[0]
    return x


def _backward(rule: KeyRule, x: np.ndarray) -> np.ndarray:
    if rule.transform == "linear":
        return x.T
    if rule.transform == "conv_patch":
        return x.transpose(4, 3, 0, 1, 2)
    if rule.transform == "squeeze0":
        return x[None]
    return x


def _summarise(names, limit: int = 5) -> str:
    names = sorted(names)
    more = f" … and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _set(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def _get(tree: Mapping, dotted: str):
    for p in dotted.split("."):
        tree = tree[p]
    return tree


def to_cos_params(state_dict: Mapping[str, np.ndarray], cfg: DiTConfig, layout: Layout | None = None) -> dict:
    """A nested dict of numpy arrays in cos-jax layout from a PyTorch-named state dict (numpy values).

    Every source tensor must be used exactly once and every parameter filled; otherwise a
    `KeyMismatchError` names the missing and unexpected keys and the layout assumed.
    """
    layout = layout or detect_layout(state_dict)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    source = {k.removeprefix(SINGLE_FILE_PREFIX): v for k, v in state_dict.items()}
    params: dict = {}
    used, missing = set(), []
    for rule in DIT_RULES:
        name = rule.source(layout)
        if "{i}" not in name:
            if name in source:
                _set(params, rule.target, _forward(rule, np.asarray(source[name])))
                used.add(name)
            else:
                missing.append(name)
            continue
        layers = []
        for i in range(cfg.num_layers):
            key = name.format(i=i)
            if key in source:
                layers.append(_forward(rule, np.asarray(source[key])))
                used.add(key)
            else:
                missing.append(key)
        if len(layers) == cfg.num_layers:
            _set(params, rule.target, np.stack(layers))
    unexpected = set(source) - used
    if missing or unexpected:
        raise KeyMismatchError(
            f"{layout} layout: {len(missing)} missing tensors [{_summarise(missing)}], "
            f"{len(unexpected)} unexpected tensors [{_summarise(unexpected)}]"
        )
    return params


def expected_keys(cfg: DiTConfig, layout: Layout) -> list[str]:
    """Every tensor name a checkpoint of this config has in the given layout."""
    names = []
    for rule in DIT_RULES:
        name = rule.source(layout)
        names += [name.format(i=i) for i in range(cfg.num_layers)] if "{i}" in name else [name]
    return names


def from_cos_params(params: Mapping, cfg: DiTConfig, layout: Layout) -> dict[str, np.ndarray]:
    """The inverse of `to_cos_params`: PyTorch-named numpy arrays in the chosen layout."""
    out = {}
    for rule in DIT_RULES:
        value = np.asarray(_get(params, rule.target))
        name = rule.source(layout)
        if "{i}" in name:
            for i in range(cfg.num_layers):
                out[name.format(i=i)] = _backward(rule, value[i])
        else:
            out[name] = _backward(rule, value)
    return out


_BLOCK_INDEX = re.compile(r"^blocks\.(\d+)\.")


def rename(state_dict: Mapping[str, np.ndarray], src: Layout, dst: Layout) -> dict[str, np.ndarray]:
    """Rename keys between the official and diffusers layouts (shapes are identical in both)."""
    table = {}
    for rule in DIT_RULES:
        table[rule.source(src).replace("{i}.", "")] = rule.source(dst).replace("{i}.", "")
    out = {}
    for key, value in state_dict.items():
        match = _BLOCK_INDEX.match(key)
        generic = _BLOCK_INDEX.sub("blocks.", key) if match else key
        if generic not in table:
            raise KeyMismatchError(f"no {src}->{dst} rule for key {key!r}")
        renamed = table[generic]
        out[renamed.replace("blocks.", f"blocks.{match.group(1)}.", 1) if match else renamed] = value
    return out
