"""Block-by-block validation at full depth under bounded memory (`cos-jax validate --stream`).

Both frameworks run the model in pieces, one transformer block at a time:
- the embeddings and the head are diffusers' own `WanTransformer3DModel.forward` with its block list swapped
  for a stand-in (one that records the first block's inputs, then one that returns a given final hidden
  state); the cos-jax side is `WanDiT.embed` / `WanDiT.head_output` of a zero-block `WanDiT`;
- block i: only its tensors are read (one at a time, from the safetensors reader or the mmapped `.pth`),
  LoRA-merged, rounded like the converted checkpoint, loaded into diffusers' `WanTransformerBlock` and into
  cos-jax's `WanBlock` (from the converted checkpoint's per-layer storage, or the same source arrays), run,
  and freed before block i+1 is read.

Every cos-jax block is fed the reference's input hidden state, so its error is its own ("isolated") and a
bad block is named; cos-jax also runs its own chain (errors compounding, what the whole-model validation
measures) for the final output. Peak memory is about one block's weights per framework plus the
embeddings/head weights and activations, so a full 40-block A14B expert (57 GB fp32) fits a 24 GB host.
"""

from __future__ import annotations

import copy
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cos_jax.convert import reference
from cos_jax.convert.checkpoint import read_manifest, restore_arrays, storage_path
from cos_jax.convert.convert import release_freed_memory
from cos_jax.convert.dit_keys import DIT_RULES, forward_transform, is_stacked, plan_sources, target_shapes
from cos_jax.convert.kinds import KINDS, check_shapes, real_name
from cos_jax.convert.layouts import resolve_component
from cos_jax.convert.load import fill_module, flatten_params
from cos_jax.convert.validate_plan import Check, ValidationResult, relative_error, round_to, torch_model
from cos_jax.wan.config import DiTConfig
from cos_jax.wan.dit import BlockInputs, WanBlock, abstract_dit
from cos_jax.wan.precision import get_policy

F32 = jnp.float32
OUTER_RULES = tuple(r for r in DIT_RULES if not is_stacked(r))
BLOCK_RULES = tuple(r for r in DIT_RULES if is_stacked(r))


class _Weights:
    """Per-part weights of one component for both sides: the reference's (diffusers names, float32,
    LoRA-merged, rounded through the converted checkpoint's dtype) and cos-jax's ({dotted path: array})."""

    def __init__(self, check: Check):
        self.source, self.layout, self.config = resolve_component(check.component)
        plan = plan_sources(self.source.keys(), self.config, self.layout)  # strict key check, headers only
        check_shapes(KINDS["wan_dit"], self.source, plan, self.config, self.layout, check.component.path)
        self.check = check
        self.converted_dir = None
        if check.converted:
            entry = read_manifest(check.converted)["components"][check.name]
            self.converted_dir = os.path.join(check.converted, entry["path"])

    def read(self, rules, layer: int | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(reference state, cos-jax flat params) of the outer part (`layer=None`) or of one block."""
        ref, cos = {}, {}
        for rule in rules:
            x = self.source.read(real_name(self.source, rule.source(self.layout).format(i=layer))).astype(
                F32, copy=False
            )
            for lora in self.check.loras:
                delta = lora.delta(rule.target, layer)
                if delta is not None:
                    x = x + delta
            x = round_to(x, self.check.dtype)
            prefix = f"blocks.{layer}." if layer is not None else ""
            ref[rule.diffusers.format(i=layer).removeprefix(prefix)] = x
            if self.converted_dir is None:
                cos[rule.target.removeprefix("blocks.")] = forward_transform(rule, x)
        if self.converted_dir is not None:
            cos = self._restore(rules, layer)
        return ref, cos

    def _restore(self, rules, layer: int | None) -> dict[str, jax.Array]:
        shapes = target_shapes(self.config)
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        specs = {
            storage_path(r.target, layer): jax.ShapeDtypeStruct(shapes[r.target], F32, sharding=device) for r in rules
        }
        restored = restore_arrays(self.converted_dir, specs)
        return {r.target.removeprefix("blocks."): restored[storage_path(r.target, layer)] for r in rules}


class _Reference:
    """diffusers' side: the zero-block model for embeddings and head, and one `WanTransformerBlock` at a time."""

    def __init__(self, outer_state: dict, cfg: DiTConfig):
        torch, diffusers = reference._torch()
        self.torch = torch
        self.model = torch_model(outer_state, cfg.replace(num_layers=0))
        with torch.device("meta"):
            self.template = diffusers.WanTransformer3DModel(**reference.diffusers_config(cfg.replace(num_layers=1)))
        self.template = self.template.blocks[0]

    def embed(self, inputs: reference.ParityInputs) -> tuple:
        """(hidden, context, timestep_proj, rotary_emb): the first block's inputs."""
        recorder = _stand_ins()[0]()
        self.model.blocks = self.torch.nn.ModuleList([recorder])
        reference.reference_forward(self.model, inputs)
        return recorder.inputs

    def block(self, state: dict, hidden, conditions):
        block = copy.deepcopy(self.template)
        block.load_state_dict({k: self.torch.from_numpy(v) for k, v in state.items()}, strict=True, assign=True)
        with self.torch.no_grad():
            return block.float().eval()(hidden, *conditions)

    def head(self, inputs: reference.ParityInputs, final) -> np.ndarray:
        """The model output (channel-last) for the last block's output `final`."""
        self.model.blocks = self.torch.nn.ModuleList([_stand_ins()[1](final)])
        return reference.reference_forward(self.model, inputs)


@functools.cache
def _stand_ins():
    """Two torch modules that stand in for diffusers' block list: `Recorder` records the first block's
    inputs and passes the hidden state on; `Constant` returns a given hidden state (to run only the head)."""
    torch, _ = reference._torch()

    class Recorder(torch.nn.Module):
        def forward(self, hidden_states, encoder_hidden_states, temb, rotary_emb):
            self.inputs = (hidden_states, encoder_hidden_states, temb, rotary_emb)
            return hidden_states

    class Constant(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, hidden_states, *_):
            return self.value

    return Recorder, Constant


# Module-level jitted pieces with the graph definition static: validations of equal configs (the two A14B
# experts, repeated runs) compile each piece once.
@functools.partial(jax.jit, static_argnums=0)
def _embed(graphdef, state, x, t, context, y) -> BlockInputs:
    return nnx.merge(graphdef, state).embed(x, t, context, y)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _head(graphdef, state, hidden, inputs: BlockInputs, grid) -> jax.Array:
    return nnx.merge(graphdef, state).head_output(hidden, inputs, grid)


@functools.partial(jax.jit, static_argnums=0)
def _block(graphdef, state, hidden, inputs: BlockInputs) -> jax.Array:
    block = nnx.merge(graphdef, state)
    return block(hidden, inputs.context, inputs.e0, inputs.steps, inputs.rope, get_policy("fp32"), "auto")


class _Cos:
    """cos-jax's side: a zero-block `WanDiT` for `embed`/`head_output`, and one `WanBlock` at a time."""

    def __init__(self, outer_flat: dict, cfg: DiTConfig):
        empty = abstract_dit(cfg.replace(num_layers=0))
        blocks = nnx.to_pure_dict(nnx.state(empty.blocks, nnx.Param))
        zeros = {f"blocks.{k}": np.zeros(v.shape, np.float32) for k, v in flatten_params(blocks).items()}
        outer = fill_module(empty, {**outer_flat, **zeros}, F32, f"DiT embeddings and head ({cfg})")
        self.patch_grid = outer.patch_grid
        self.outer_def, self.outer_state = nnx.split(outer)
        self.template = nnx.eval_shape(lambda: WanBlock(cfg, rngs=nnx.Rngs(0), param_dtype=F32))
        self.block_def = nnx.split(self.template)[0]

    def embed(self, inputs: reference.ParityInputs) -> BlockInputs:
        y = None if inputs.y is None else jnp.asarray(inputs.y)
        args = (jnp.asarray(inputs.x), jnp.asarray(inputs.timesteps), jnp.asarray(inputs.context), y)
        return _embed(self.outer_def, self.outer_state, *args)

    def block_state(self, flat: dict):
        return nnx.split(fill_module(self.template, flat, F32, "DiT block"))[1]

    def block(self, state, hidden, inputs: BlockInputs) -> jax.Array:
        return _block(self.block_def, state, jnp.asarray(hidden), inputs)

    def head(self, hidden, inputs: BlockInputs, latent_shape) -> np.ndarray:
        grid = self.patch_grid(latent_shape)
        return np.asarray(_head(self.outer_def, self.outer_state, jnp.asarray(hidden), inputs, grid))


def _time_rows(inputs: BlockInputs) -> np.ndarray:
    """cos-jax's block modulation per sample [B, 1, 6, D] or per token [B, L, 6, D]."""
    return np.asarray(inputs.steps.select(inputs.e0))


def validate_streamed(
    check: Check, layers: int | None, latent: tuple[int, int, int], text_tokens: int, seed: int, report=None
) -> ValidationResult:
    """Validate one component block by block (see the module docstring)."""
    weights = _Weights(check)
    cfg = weights.config
    if layers is not None:
        cfg = cfg.replace(num_layers=min(layers, cfg.num_layers))
    emit = report or (lambda *_: None)
    inputs = reference.random_inputs(cfg, 1, latent, text_tokens=text_tokens, seed=seed)

    outer_ref, outer_cos = weights.read(OUTER_RULES, None)
    ref, cos = _Reference(outer_ref, cfg), _Cos(outer_cos, cfg)
    del outer_ref, outer_cos
    hidden, context, temb, rope = ref.embed(inputs)
    conditions = (context, temb, rope)
    cos_inputs = cos.embed(inputs)
    ref_time = temb.numpy() if temb.ndim == 4 else temb.numpy()[:, None]
    isolated = {
        "patch_embedding": relative_error(cos_inputs.hidden, hidden.numpy()),
        "text_embedding": relative_error(cos_inputs.context, context.numpy()),
        "time_projection": relative_error(_time_rows(cos_inputs), ref_time),
    }
    for name, err in isolated.items():
        emit(check.name, name, err)

    chain, chained = cos_inputs.hidden, []
    for i in range(cfg.num_layers):
        ref_state, cos_flat = weights.read(BLOCK_RULES, i)
        state = cos.block_state(cos_flat)
        del cos_flat
        out = ref.block(ref_state, hidden, conditions)
        del ref_state
        isolated[f"block {i}"] = relative_error(cos.block(state, hidden.numpy(), cos_inputs), out.numpy())
        chain = cos.block(state, chain, cos_inputs)
        chained.append(relative_error(chain, out.numpy()))
        emit(check.name, f"block {i}", isolated[f"block {i}"], chained[-1])
        hidden = out
        del state, out
        release_freed_memory()

    expected = ref.head(inputs, hidden)
    isolated["head"] = relative_error(cos.head(hidden.numpy(), cos_inputs, inputs.x.shape), expected)
    emit(check.name, "head", isolated["head"])
    output = relative_error(cos.head(chain, cos_inputs, inputs.x.shape), expected)
    return ValidationResult(check.name, cfg.num_layers, output, chained, isolated)
