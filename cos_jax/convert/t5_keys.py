"""Key table between umT5 encoder checkpoints and cos-jax's `UMT5Encoder` (wan22.md §7).

Layouts: `diffusers` = transformers' `UMT5EncoderModel` (diffusers' `text_encoder/`), `official` = Wan2.2's
`models_t5_umt5-xxl-enc-bf16.pth`. `{i}` is the block index; block tensors are stacked on a layer axis.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from cos_jax.convert.dit_keys import KeyMismatchError, KeyRule, Layout, _forward, _set, match_sources
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


def t5_params(state_dict: Mapping[str, np.ndarray], cfg: T5Config, layout: Layout | None = None) -> dict:
    """Nested numpy params for `UMT5Encoder` from a PyTorch-named umT5 state dict, strictly checked."""
    layout = layout or detect_t5_layout(state_dict)
    source = dict(state_dict)
    if layout == "diffusers":
        for alias, name in TIED_ALIASES.items():
            if alias in source:
                source.setdefault(name, source[alias])
                source.pop(alias)
    params: dict = {}
    for rule, names in match_sources(source, T5_RULES, cfg.num_layers, layout, what="umT5 "):
        arrays = [_forward(rule, np.asarray(source[n])) for n in names]
        _set(params, rule.target, np.stack(arrays) if "{i}" in rule.source(layout) else arrays[0])
    return params


def umt5_from_state_dict(
    state_dict: Mapping[str, np.ndarray], cfg: T5Config, layout: Layout | None = None, param_dtype=jnp.float32
) -> UMT5Encoder:
    """A `UMT5Encoder` holding the given weights, with every shape checked against the config."""
    flat = flatten_params(t5_params(state_dict, cfg, layout))
    return fill_module(abstract_umt5(cfg, param_dtype), flat, param_dtype, f"umT5 ({cfg})")
