"""Declarative key tables between PyTorch DiT checkpoints and cos-jax parameters.

One row per tensor family: the diffusers name, the official `WanModel` name, the cos-jax parameter path
and a transform. `{i}` stands for the block index; block tensors are stacked on a leading layer axis.
The same table converts in both directions (`to_cos_params`, `from_cos_params`).
"""

from __future__ import annotations

import dataclasses
import functools
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


def match_sources(names, rules, num_layers: int, layout: str, what: str = "", hint: str = "") -> list:
    """Each rule with its source names (`{i}` expanded over `num_layers` blocks), requiring every name to
    be used exactly once; otherwise a `KeyMismatchError` names the missing and unexpected keys (first few,
    then counts), the layout assumed, and `hint`. `rules` are any objects with `.source(layout)`."""
    names = set(names)
    plan, used, missing = [], set(), []
    for rule in rules:
        name = rule.source(layout)
        wanted = [name.format(i=i) for i in range(num_layers)] if "{i}" in name else [name]
        missing += [k for k in wanted if k not in names]
        used.update(wanted)
        plan.append((rule, wanted))
    unexpected = names - used
    if missing or unexpected:
        raise KeyMismatchError(
            f"{what}{layout} layout: {len(missing)} missing tensors [{_summarise(missing)}], "
            f"{len(unexpected)} unexpected tensors [{_summarise(unexpected)}]{hint}"
        )
    return plan


def plan_sources(names, cfg: DiTConfig, layout: Layout) -> list[tuple[KeyRule, list[str]]]:
    """`match_sources` for the DiT table; `names` may carry the single-file prefix."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    return match_sources((k.removeprefix(SINGLE_FILE_PREFIX) for k in names), DIT_RULES, cfg.num_layers, layout)


def is_stacked(rule: KeyRule) -> bool:
    """Block tensors are stacked on a leading layer axis."""
    return "{i}" in rule.diffusers


def source_shape(rule: KeyRule, target_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The PyTorch shape of one source tensor for a (per-layer) cos-jax parameter shape."""
    if rule.transform == "linear":
        return tuple(reversed(target_shape))
    if rule.transform == "conv_patch":
        t, h, w, i, o = target_shape
        return (o, i, t, h, w)
    if rule.transform == "squeeze0":
        return (1, *target_shape)
    return tuple(target_shape)


@functools.lru_cache(maxsize=16)
def target_shapes(cfg: DiTConfig) -> dict[str, tuple[int, ...]]:
    """cos-jax parameter path -> shape (per layer for stacked block parameters), from `jax.eval_shape`."""
    from flax import nnx

    from cos_jax.wan.dit import abstract_dit

    flat = nnx.to_flat_state(nnx.state(abstract_dit(cfg), nnx.Param))
    shapes = {".".join(map(str, path)): tuple(var.get_value().shape) for path, var in flat}
    return {r.target: shapes[r.target][1:] if is_stacked(r) else shapes[r.target] for r in DIT_RULES}


def forward_transform(rule: KeyRule, x: np.ndarray) -> np.ndarray:
    """One source tensor in the cos-jax orientation."""
    return _forward(rule, x)


def backward_transform(rule: KeyRule, x: np.ndarray) -> np.ndarray:
    """One cos-jax parameter (per layer) in the PyTorch orientation."""
    return _backward(rule, x)


def to_cos_params(state_dict: Mapping[str, np.ndarray], cfg: DiTConfig, layout: Layout | None = None) -> dict:
    """A nested dict of numpy arrays in cos-jax layout from a PyTorch-named state dict (numpy values).

    Every source tensor must be used exactly once and every parameter filled; otherwise a
    `KeyMismatchError` names the missing and unexpected keys and the layout assumed.
    """
    layout = layout or detect_layout(state_dict)
    source = {k.removeprefix(SINGLE_FILE_PREFIX): v for k, v in state_dict.items()}
    params: dict = {}
    for rule, names in plan_sources(source, cfg, layout):
        values = [_forward(rule, np.asarray(source[k])) for k in names]
        _set(params, rule.target, np.stack(values) if is_stacked(rule) else values[0])
    return params


def expected_keys(cfg: DiTConfig, layout: Layout) -> list[str]:
    """Every tensor name a checkpoint of this config has in the given layout."""
    names = []
    for rule in DIT_RULES:
        name = rule.source(layout)
        names += [name.format(i=i) for i in range(cfg.num_layers)] if "{i}" in name else [name]
    return names


def from_cos_params(params: Mapping, cfg: DiTConfig, layout: Layout) -> dict[str, np.ndarray]:
    """The inverse of `to_cos_params`: PyTorch-named, C-contiguous numpy arrays in the chosen layout
    (contiguous because `safetensors.numpy.save_file` mis-writes transposed views)."""
    out = {}
    for rule in DIT_RULES:
        value = np.asarray(_get(params, rule.target))
        name = rule.source(layout)
        if "{i}" in name:
            for i in range(cfg.num_layers):
                out[name.format(i=i)] = np.ascontiguousarray(_backward(rule, value[i]))
        else:
            out[name] = np.ascontiguousarray(_backward(rule, value))
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
