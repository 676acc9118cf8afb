"""Cross-framework validation as a user feature: the source checkpoint in diffusers' `WanTransformer3DModel`
(official layouts renamed to diffusers keys in memory; the official float64 timestep sinusoid swapped in)
against the cos-jax model (a converted checkpoint, or the source converted in memory), same random inputs.

Two modes:
- whole model (default): both frameworks hold the whole model and run one forward each (the cos-jax one is
  the production `lax.scan` forward). `layers=N` keeps the embeddings, the head and the first N blocks on
  both sides, reading only those tensors (the converted checkpoint stores blocks per layer).
- streamed (`stream=True`, `cos_jax.convert.validate_stream`): one block at a time at full depth, peak
  memory about one block's weights per framework; every block is fed the reference's input so a bad block
  is named, and the chained output is compared too.
"""

from __future__ import annotations

import dataclasses
import re

import jax.numpy as jnp
import numpy as np

from cos_jax.convert import reference
from cos_jax.convert.checkpoint import load_checkpoint, read_manifest
from cos_jax.convert.dit_keys import SINGLE_FILE_PREFIX, plan_sources, rename
from cos_jax.convert.layouts import Component, discover, resolve_component
from cos_jax.convert.load import dit_from_state_dict
from cos_jax.convert.lora import Lora, load_lora

_BLOCK = re.compile(r"^blocks\.(\d+)\.")


@dataclasses.dataclass
class ValidationResult:
    component: str
    layers: int
    relative: float  # max|Δ| / max|ref| of the output
    per_block: list[float] | None = None  # after every block, errors compounding (cos-jax runs its own chain)
    isolated: dict[str, float] | None = None  # streamed mode: each part on the reference's input

    def failures(self, tolerance: float) -> list[str]:
        """The parts above `tolerance` ("output", "block 3", "patch_embedding", ...)."""
        bad = [name for name, err in (self.isolated or {}).items() if not err <= tolerance]
        return bad + (["output"] if not self.relative <= tolerance else [])

    def ok(self, tolerance: float) -> bool:
        return not self.failures(tolerance)


@dataclasses.dataclass
class Check:
    """One component to validate: its source, the LoRAs to merge on the reference side, and the converted
    checkpoint (with its stored dtype) when there is one."""

    name: str
    component: Component
    loras: list[Lora]
    converted: str | None
    dtype: str  # the stored dtype of the converted checkpoint ("float32" without one)


def plan_checks(
    src: str, converted: str | None, component: str | None, loras: dict[str, tuple[str, float]] | None
) -> list[Check]:
    """The components to validate, with their LoRAs; errors for unknown components and forgotten LoRAs."""
    found = discover(src)
    manifest = read_manifest(converted) if converted else None
    names = [component] if component else list(found.components)
    checks = []
    for name in names:
        if name not in found.components:
            raise KeyError(f"{src} has components {list(found.components)}, not {name!r}")
        wanted = dict(loras or {})
        if manifest and name not in manifest["components"]:
            raise KeyError(f"{converted} has components {list(manifest['components'])}, not {name!r}")
        if manifest and name not in wanted:
            for rec in manifest["components"][name]["loras"]:
                raise ValueError(
                    f"{converted}/{name} has the LoRA {rec['file']} merged; pass it again (--lora-high/--lora-low/"
                    "--lora) so the reference merges it too"
                )
        comp = found.components[name]
        merged = []
        if name in wanted:
            file, scale = wanted[name]
            merged.append(load_lora(file, resolve_component(comp)[2], scale))
        dtype = manifest["components"][name].get("dtype", manifest["dtype"]) if manifest else "float32"
        checks.append(Check(name, comp, merged, converted, dtype))
    return checks


def _source_state(comp, num_layers: int | None):
    """(diffusers-named fp32 numpy state, config) of a component, only the first `num_layers` blocks."""
    source, layout, cfg = resolve_component(comp)
    plan_sources(source.keys(), cfg, layout)  # strict key check on the whole checkpoint
    if num_layers is not None:
        cfg = cfg.replace(num_layers=min(num_layers, cfg.num_layers))
    state = {}
    for name in source.infos:
        plain = name.removeprefix(SINGLE_FILE_PREFIX)
        block = _BLOCK.match(plain)
        if block and int(block[1]) >= cfg.num_layers:
            continue
        state[plain] = source.read(name).astype(np.float32)
    if layout == "official":
        state = rename(state, "official", "diffusers")
    return state, cfg


def _merge_loras(state: dict, loras, cfg) -> None:
    """W += scale · B @ A on the diffusers-named reference weights (the DiffSynth formula)."""
    from cos_jax.convert.dit_keys import DIT_RULES

    by_target = {r.target: r for r in DIT_RULES}
    for lora in loras:
        for (target, layer), _ in lora.pairs.items():
            if layer is not None and layer >= cfg.num_layers:
                continue
            key = by_target[target].diffusers.format(i=layer)
            state[key] = state[key] + lora.delta(target, layer)


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """float32 `x` rounded through the stored dtype of a converted checkpoint (bf16), as its weights were."""
    return x if dtype == "float32" else x.astype(jnp.bfloat16).astype(np.float32)


def torch_model(state: dict, cfg):
    """diffusers' `WanTransformer3DModel` holding `state` (diffusers names, shared memory), fp32, official
    sinusoid; built on the meta device so no random initialisation is paid for."""
    torch, diffusers = reference._torch()
    with torch.device("meta"):
        model = diffusers.WanTransformer3DModel(**reference.diffusers_config(cfg))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True, assign=True)
    # the RoPE tables are non-persistent buffers: rebuild them off the meta device
    model.rope = type(model.rope)(cfg.head_dim, cfg.patch_size, cfg.rope_max_positions, cfg.rope_theta)
    model.condition_embedder.timesteps_proj = reference.official_sinusoid(cfg.freq_dim)
    return model.float().eval()


def _torch_block_outputs(model, inputs) -> tuple[np.ndarray, list[np.ndarray]]:
    captured = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: captured.append(out.detach().numpy())) for b in model.blocks]
    try:
        out = reference.reference_forward(model, inputs)
    finally:
        for h in hooks:
            h.remove()
    return out, captured


def _cos_block_outputs(model, inputs) -> tuple[np.ndarray, np.ndarray]:
    """The output and every block's output [num_layers, B, L, D], written into a buffer by the block hook."""
    x = jnp.asarray(inputs.x)
    y = None if inputs.y is None else jnp.asarray(inputs.y)
    pt, ph, pw = model.config.patch_size
    tokens = (x.shape[1] // pt) * (x.shape[2] // ph) * (x.shape[3] // pw)
    buffer = jnp.zeros((model.config.num_layers, x.shape[0], tokens, model.config.dim))
    out, captures = model.forward_hooked(
        x, jnp.asarray(inputs.timesteps), jnp.asarray(inputs.context), y,
        hook=lambda h, _p, layer, buf, _in: (h, buf.at[layer].set(h)), state=buffer,
    )  # fmt: skip
    return np.asarray(out), np.asarray(captures)


def relative_error(got, ref) -> float:
    """max|got − ref| / max|ref|."""
    got, ref = np.asarray(got, np.float32), np.asarray(ref, np.float32)
    return float(np.abs(got - ref).max()) / float(np.abs(ref).max())


def _validate_whole(check: Check, layers, per_block: bool, latent, text_tokens: int, seed: int) -> ValidationResult:
    state, cfg = _source_state(check.component, layers)
    _merge_loras(state, check.loras, cfg)
    if check.converted:
        state = {k: round_to(v, check.dtype) for k, v in state.items()}
        model = load_checkpoint(check.converted, check.name, param_dtype=jnp.float32, num_layers=cfg.num_layers)
    else:
        model = dit_from_state_dict(state, cfg, layout="diffusers")
    inputs = reference.random_inputs(cfg, 1, latent, text_tokens=text_tokens, seed=seed)
    ref_model = torch_model(state, cfg)
    del state
    expected, ref_blocks = _torch_block_outputs(ref_model, inputs)
    got, cos_blocks = _cos_block_outputs(model, inputs)
    blocks = None
    if per_block:
        blocks = [relative_error(c, r) for c, r in zip(cos_blocks, ref_blocks, strict=True)]
    return ValidationResult(check.name, cfg.num_layers, relative_error(got, expected), blocks)


def validate(
    src: str,
    converted: str | None = None,
    *,
    component: str | None = None,
    layers: int | None = None,
    per_block: bool = False,
    stream: bool = False,
    latent: tuple[int, int, int] = (2, 4, 4),
    text_tokens: int = 16,
    seed: int = 0,
    loras: dict[str, tuple[str, float]] | None = None,
    report=None,
) -> list[ValidationResult]:
    """Compare every component of `src` (or one) with its cos-jax counterpart; see the module docstring.

    `loras` maps component -> (file, scale) to merge on the reference side. A converted checkpoint whose
    manifest records merged LoRAs needs them given here again (the manifest keeps only file names).
    `stream=True` validates block by block (always per block); `report(component, part, error)` is then
    called as each part finishes, for progress output.
    """
    checks = plan_checks(src, converted, component, loras)
    if stream:
        from cos_jax.convert.validate_stream import validate_streamed

        return [validate_streamed(c, layers, latent, text_tokens, seed, report) for c in checks]
    return [_validate_whole(c, layers, per_block, latent, text_tokens, seed) for c in checks]
