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

import jax.numpy as jnp
import numpy as np

from cos_jax.convert import reference
from cos_jax.convert.checkpoint import load_checkpoint
from cos_jax.convert.load import dit_from_state_dict
from cos_jax.convert.validate_plan import (
    Check,
    ValidationResult,
    merge_loras,
    plan_checks,
    relative_error,
    round_to,
    source_state,
    torch_model,
)


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


def _validate_whole(check: Check, layers, per_block: bool, latent, text_tokens: int, seed: int) -> ValidationResult:
    state, cfg = source_state(check.component, layers)
    merge_loras(state, check.loras, cfg)
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
