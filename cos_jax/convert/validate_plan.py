"""What cross-framework validation compares and how: the components to check (with their LoRAs), the
reference model and weights on the diffusers side, and the error measure. Shared by the whole-model mode
(`cos_jax.convert.validate`) and the streamed one (`cos_jax.convert.validate_stream`)."""

from __future__ import annotations

import dataclasses
import re

import jax.numpy as jnp
import numpy as np

from cos_jax.convert import reference
from cos_jax.convert.checkpoint import read_manifest
from cos_jax.convert.dit_keys import SINGLE_FILE_PREFIX, plan_sources, rename
from cos_jax.convert.layouts import Component, discover, resolve_component
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


def source_state(comp, num_layers: int | None):
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


def merge_loras(state: dict, loras, cfg) -> None:
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


def relative_error(got, ref) -> float:
    """max|got − ref| / max|ref|."""
    got, ref = np.asarray(got, np.float32), np.asarray(ref, np.float32)
    return float(np.abs(got - ref).max()) / float(np.abs(ref).max())
