"""Key table between umT5 encoder checkpoints and cos-jax's `UMT5Encoder` (wan22.md §7).

Layouts: `diffusers` = transformers' `UMT5EncoderModel` (diffusers' `text_encoder/`), `official` = Wan2.2's
`models_t5_umt5-xxl-enc-bf16.pth`. `{i}` is the block index; block tensors are stacked on a layer axis.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from cos_jax.convert.dit_keys import (
    KeyMismatchError,
    KeyRule,
    Layout,
    _set,
    forward_transform,
    is_stacked,
    match_sources,
)
from cos_jax.convert.load import fill_module, flatten_params
from cos_jax.wan.t5 import T5Config, UMT5Encoder, abstract_umt5

_HF_BLOCK = "encoder.block.{i}.layer"
T5_RULES: tuple[KeyRule, ...] = (
    KeyRule("shared.weight", "token_embedding.weight", "embedding", "copy"),
    KeyRule(f"{_HF_BLOCK}.0.layer_norm.weight", "blocks.{i}.norm1.weight", "blocks.norm_attn", "copy"),
    *(
        KeyRule(f"{_HF_BLOCK}.0.SelfAttention.{n}.weight", f"blocks.{{i}}.attn.{n}.weight", f"blocks.{n}", "linear")
        for n in ("q", "k", "v", "o")
    ),
    KeyRule(
        f"{_HF_BLOCK}.0.SelfAttention.relative_attention_bias.weight",
        "blocks.{i}.pos_embedding.embedding.weight",
        "blocks.position_bias",
        "copy",
    ),
    KeyRule(f"{_HF_BLOCK}.1.layer_norm.weight", "blocks.{i}.norm2.weight", "blocks.norm_ffn", "copy"),
    KeyRule(f"{_HF_BLOCK}.1.DenseReluDense.wi_0.weight", "blocks.{i}.ffn.gate.0.weight", "blocks.gate", "linear"),
    KeyRule(f"{_HF_BLOCK}.1.DenseReluDense.wi_1.weight", "blocks.{i}.ffn.fc1.weight", "blocks.up", "linear"),
    KeyRule(f"{_HF_BLOCK}.1.DenseReluDense.wo.weight", "blocks.{i}.ffn.fc2.weight", "blocks.down", "linear"),
    KeyRule("encoder.final_layer_norm.weight", "norm.weight", "final_norm", "copy"),
)
# transformers ties the input embedding to `shared`; a state dict may hold it under either name or both.
TIED_ALIASES = {"encoder.embed_tokens.weight": "shared.weight"}


def detect_t5_layout(keys) -> Layout:
    keys = set(keys)
    if "token_embedding.weight" in keys:
        return "official"
    if keys & {"shared.weight", "encoder.embed_tokens.weight"}:
        return "diffusers"
    raise KeyMismatchError("not a umT5 encoder checkpoint: no 'shared.weight' nor 'token_embedding.weight'")


def plan_t5_sources(names, cfg: T5Config, layout: Layout) -> list[tuple[KeyRule, list[str]]]:
    """Each rule with its source names (`{i}` expanded), every name used exactly once (`match_sources`).

    transformers ties the input embedding to `shared`: in the diffusers layout the embedding is read from
    `shared.weight`, or from `encoder.embed_tokens.weight` when only that is present; when both are, the tied
    copy `encoder.embed_tokens.weight` is not read."""
    names = set(names)
    renamed = {}
    if layout == "diffusers":
        for alias, name in TIED_ALIASES.items():
            if alias in names:
                names.discard(alias)
                if name not in names:
                    names.add(name)
                    renamed[name] = alias
    plan = match_sources(names, T5_RULES, cfg.num_layers, layout, what="umT5 ", hint=f"; is {cfg} the checkpoint's?")
    return [(rule, [renamed.get(n, n) for n in ns]) for rule, ns in plan]


def t5_params(state_dict: Mapping[str, np.ndarray], cfg: T5Config, layout: Layout | None = None) -> dict:
    """Nested numpy params for `UMT5Encoder` from a PyTorch-named umT5 state dict, strictly checked."""
    layout = layout or detect_t5_layout(state_dict)
    params: dict = {}
    for rule, names in plan_t5_sources(state_dict, cfg, layout):
        arrays = [forward_transform(rule, np.asarray(state_dict[n])) for n in names]
        _set(params, rule.target, np.stack(arrays) if is_stacked(rule) else arrays[0])
    return params


def umt5_from_state_dict(
    state_dict: Mapping[str, np.ndarray], cfg: T5Config, layout: Layout | None = None, param_dtype=jnp.float32
) -> UMT5Encoder:
    """A `UMT5Encoder` holding the given weights, with every shape checked against the config."""
    flat = flatten_params(t5_params(state_dict, cfg, layout))
    return fill_module(abstract_umt5(cfg, param_dtype), flat, param_dtype, f"umT5 ({cfg})")


def t5_config_from_json(config: Mapping) -> T5Config:
    """The config of a transformers `text_encoder/config.json` (`UMT5EncoderModel`)."""
    if config.get("model_type") not in (None, "umt5", "t5") or config.get("feed_forward_proj", "gated-gelu") not in (
        "gated-gelu",
    ):
        raise ValueError(
            f"text_encoder/config.json: model_type={config.get('model_type')!r}, feed_forward_proj="
            f"{config.get('feed_forward_proj')!r}; the Wan text encoder is a umT5 with gated-gelu"
        )
    return T5Config(
        vocab_size=config["vocab_size"],
        dim=config["d_model"],
        head_dim=config["d_kv"],
        num_heads=config["num_heads"],
        ffn_dim=config["d_ff"],
        num_layers=config["num_layers"],
        num_buckets=config.get("relative_attention_num_buckets", 32),
        max_distance=config.get("relative_attention_max_distance", 128),
        eps=config.get("layer_norm_epsilon", 1e-6),
    )


def t5_config_from_shapes(shapes: Mapping[str, tuple[int, ...]], layout: Layout) -> T5Config:
    """The config from tensor shapes (the official `.pth` has no config.json); the bucket distance and eps
    are not in the shapes and take the umT5 values (128, 1e-6)."""
    source = {r.target: r.source(layout) for r in T5_RULES}
    embedding = shapes.get(source["embedding"]) or shapes.get("encoder.embed_tokens.weight")
    if embedding is None:
        raise KeyMismatchError(f"umT5 {layout} layout: no {source['embedding']!r}; cannot read the config")
    block = lambda target: shapes[source[target].format(i=0)]
    norm = source["blocks.norm_attn"].replace("{i}", "{}")
    num_layers = sum(1 for i in range(len(shapes)) if norm.format(i) in shapes)
    try:
        num_buckets, num_heads = block("blocks.position_bias")
        inner = block("blocks.q")[0]
        ffn_dim = block("blocks.up")[0]
    except KeyError as err:
        raise KeyMismatchError(f"umT5 {layout} layout: tensor {err} is missing; cannot read the config") from None
    return T5Config(vocab_size=embedding[0], dim=embedding[1], head_dim=inner // num_heads, num_heads=num_heads,
                    ffn_dim=ffn_dim, num_layers=num_layers, num_buckets=num_buckets)  # fmt: skip
