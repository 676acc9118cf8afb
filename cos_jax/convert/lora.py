"""LoRA files in the DiffSynth-Studio format (e.g. VBVR-Wan2.2's `high_noise_lora.safetensors`), merged
into the base weights during conversion.

Key names and scaling follow DiffSynth-Studio's `GeneralLoRALoader` (read, not copied):
- a pair is `<module>.lora_B[.<adapter>].weight` (up, shape (out, r)) and the same name with `lora_A`
  (down, shape (r, in)); files that use `.lora_up.` pair it with `.lora_down.`;
- a leading `diffusion_model.` is dropped; `<module>` is the official module name
  (`blocks.3.self_attn.q`, `blocks.3.ffn.0`, ...);
- an optional `<module>.alpha` scales the down matrix by alpha / rank (files trained by DiffSynth have
  none: its training uses lora_alpha = rank, i.e. unit scaling);
- merged weight: W + scale · B @ A, where `scale` is the loader's `alpha` argument (1.0 in VBVR's tools).

Beyond DiffSynth, diffusers module names (`blocks.3.attn1.to_q`) and the prefixes `transformer.`,
`pipe.dit.`, `dit.` and `model.diffusion_model.` are accepted. Every pair must hit a linear weight of the
model with matching shapes; anything else is an error, never silently skipped.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from cos_jax.convert.dit_keys import DIT_RULES, KeyRule, _summarise, source_shape, target_shapes
from cos_jax.convert.sources import TensorSource, open_tensors
from cos_jax.wan.config import DiTConfig

_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "pipe.dit.", "dit.", "transformer.")
# `<module>.<factor>[.<adapter name>].weight`; peft's default adapter name is "default"
_PAIR = re.compile(r"^(?P<module>.+)\.(?P<factor>lora_A|lora_B|lora_down|lora_up)(?:\.[^.]+)?\.weight$")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


class LoraMismatchError(ValueError):
    """A LoRA file does not fit the model (unknown targets, wrong rank or shapes, incomplete pairs)."""


def _linear_targets() -> dict[str, KeyRule]:
    """Module name (official and diffusers, `{i}` for the block index) -> the rule of its weight."""
    table = {}
    for rule in DIT_RULES:
        if rule.transform == "linear":
            for layout in ("official", "diffusers"):
                table[rule.source(layout).removesuffix(".weight")] = rule
    return table


@dataclasses.dataclass(frozen=True)
class LoraPair:
    up: str  # tensor names in the file
    down: str
    alpha: str | None
    rank: int


@dataclasses.dataclass
class Lora:
    """A parsed LoRA: pairs keyed by (cos-jax kernel path, layer index or None)."""

    path: str
    scale: float
    source: TensorSource
    pairs: dict[tuple[str, int | None], LoraPair]

    @property
    def ranks(self) -> list[int]:
        return sorted({p.rank for p in self.pairs.values()})

    def factors(self, target: str, layer: int | None) -> tuple[np.ndarray, np.ndarray] | None:
        """(down [in, r], up [r, out]) in float32, kernel orientation, with the file's alpha / rank and the
        loader's scale folded in, so that down @ up is the kernel's delta; None when the LoRA skips it."""
        pair = self.pairs.get((target, layer))
        if pair is None:
            return None
        up = self.source.read(pair.up).astype(np.float32)
        down = self.source.read(pair.down).astype(np.float32)
        if pair.alpha is not None:
            down = down * (float(self.source.read(pair.alpha).astype(np.float32).reshape(())) / pair.rank)
        return down.T, np.float32(self.scale) * up.T

    def delta(self, target: str, layer: int | None) -> np.ndarray | None:
        """scale · B @ A in float32, PyTorch orientation (out, in); None when the LoRA skips this weight."""
        factors = self.factors(target, layer)
        return None if factors is None else (factors[0] @ factors[1]).T

    def summary(self) -> dict:
        return {"file": os.path.basename(self.path), "scale": self.scale, "ranks": self.ranks, "pairs": len(self.pairs)}


def load_lora(path: str | os.PathLike, cfg: DiTConfig, scale: float = 1.0) -> Lora:
    """Parse and check a LoRA file against a model config (headers only; weights are read when merged)."""
    path = os.fspath(path)
    source = open_tensors(path)
    shapes = {k: i.shape for k, i in source.infos.items()}
    targets = _linear_targets()
    pairs: dict[tuple[str, int | None], LoraPair] = {}
    used, problems = set(), []
    for key in shapes:
        m = _PAIR.match(key)
        if not m or m["factor"] not in ("lora_B", "lora_up"):
            continue
        down_factor = "lora_A" if m["factor"] == "lora_B" else "lora_down"
        down = key.replace(f".{m['factor']}.", f".{down_factor}.")
        alpha = f"{m['module']}.alpha"
        module = m["module"]
        for prefix in _PREFIXES:
            if module.startswith(prefix):
                module = module.removeprefix(prefix)
                break
        block = _BLOCK.match(module)
        layer = int(block[1]) if block else None
        rule = targets.get(f"blocks.{{i}}.{block[2]}" if block else module)
        if rule is None:
            problems.append(f"{key}: {module!r} is not a linear layer of the Wan DiT")
            continue
        if (layer is None) == ("{i}" in rule.official) or (layer is not None and layer >= cfg.num_layers):
            problems.append(f"{key}: block index {layer} does not exist in a {cfg.num_layers}-layer model")
            continue
        if down not in shapes:
            problems.append(f"{key}: its down matrix {down!r} is missing")
            continue
        up_shape, down_shape = shapes[key], shapes[down]
        w_out, w_in = _weight_shape(rule, cfg)
        if len(up_shape) != 2 or len(down_shape) != 2 or up_shape[1] != down_shape[0]:
            problems.append(f"{key}: rank mismatch, up {up_shape} vs down {down_shape}")
            continue
        if (up_shape[0], down_shape[1]) != (w_out, w_in):
            problems.append(
                f"{key}: B @ A is {(up_shape[0], down_shape[1])} but the weight {rule.official} is {(w_out, w_in)}"
            )
            continue
        if (rule.target, layer) in pairs:
            problems.append(f"{key}: a second LoRA pair for the same weight ({pairs[(rule.target, layer)].up})")
            continue
        has_alpha = alpha in shapes
        pairs[(rule.target, layer)] = LoraPair(key, down, alpha if has_alpha else None, down_shape[0])
        used.update([key, down, *([alpha] if has_alpha else [])])
    unused = set(shapes) - used
    if problems or unused or not pairs:
        detail = "; ".join(problems[:5]) + (f" … and {len(problems) - 5} more" if len(problems) > 5 else "")
        unused_note = f"{len(unused)} tensors not part of any usable pair [{_summarise(unused)}]" if unused else ""
        empty = "no LoRA pairs found" if not pairs and not problems else ""
        raise LoraMismatchError(
            f"{path}: LoRA does not fit the model: " + "; ".join(filter(None, [detail, unused_note, empty]))
        )
    return Lora(path, float(scale), source, pairs)


def _weight_shape(rule: KeyRule, cfg: DiTConfig) -> tuple[int, int]:
    """(out, in) of a linear weight in PyTorch orientation."""
    return source_shape(rule, target_shapes(cfg)[rule.target])


def merge_lora(model, lora: Lora):
    """A copy of a cos-jax DiT (`WanDiT`) with `lora` merged as `convert` merges it: W + scale·B·A in float32,
    cast back to the kernel's dtype."""
    import jax.numpy as jnp
    from flax import nnx

    graphdef, state = nnx.split(model)
    for target, layer in lora.pairs:
        *path, leaf = target.split(".")
        parent = state
        for name in path:
            parent = parent[name]
        variable = parent[leaf]
        kernel = np.array(variable[...], np.float32)
        delta = lora.delta(target, layer).T  # PyTorch (out, in) -> kernel (in, out)
        if layer is None:
            kernel += delta
        else:
            kernel[layer] += delta
        parent[leaf] = variable.replace(jnp.asarray(kernel, variable[...].dtype))
    return nnx.merge(graphdef, state)
