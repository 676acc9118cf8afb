"""`cos_jax.load`: the one entry point for models later code uses."""

from __future__ import annotations

import os

TOY = "toy"
TOY_A14B = "toy-a14b"


def load(source: str | os.PathLike = TOY, component: str | None = None, **kwargs):
    """Load a model.

    - `"toy"` (default): the toy world shipped in the package → `(ToyModel, ToySpec)`; the model holds
      `.dit` and `.text`, the spec its config, byte tokenizer (`spec.tokenizer`) and codec (`spec.codec`).
    - `"toy-a14b"`: the two-expert toy → `(ToyPair, ToySpec)`; `.dit` is the (high-noise, low-noise) pair,
      the shipped toy with its shipped LoRAs merged (`loras=(high, low)` files to use others);
    - a folder written by `cos-jax convert` → `WanComponents` (the DiT expert(s), VAE, text encoder,
      tokenizer folder, manifest), or with `component=` ("high_noise", "vae", ...) just that module,
      restored straight into the shardings of `mesh=` (see `cos_jax.convert.load_checkpoint`).
    """
    if os.fspath(source) == TOY and not os.path.exists(source):
        from cos_jax.pipelines.toy import load_toy

        return load_toy(kwargs.get("weights"))
    if os.fspath(source) == TOY_A14B and not os.path.exists(source):
        from cos_jax.pipelines.toy import load_toy_a14b

        return load_toy_a14b(kwargs.get("weights"), kwargs.get("loras"))
    from cos_jax.convert.checkpoint import load_checkpoint

    return load_checkpoint(source, component, **kwargs)
