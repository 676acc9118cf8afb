"""The components of a Wan2.2 pipeline (expert DiT(s), VAE, umT5 encoder, tokenizer) and `load_components`.

`load_components(path)` is the one loader the pipelines use. It reads either
- a folder written by `cos-jax convert` (Orbax components with a manifest: DiT expert(s), `vae/`,
  `text_encoder/`, `tokenizer/`), restored straight onto the devices — the memory-lean route for
  full-size models; or
- a **diffusers-format folder** (`model_index.json`, `transformer/`, `transformer_2/`, `vae/`,
  `text_encoder/`, `tokenizer/`, `scheduler/`), converted in memory through the same key tables
  (`cos_jax.convert`). That holds each component's tensors once on the host (in `param_dtype`) before
  they move to the device: fine for small models and for one full-size expert on a large host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from cos_jax.wan.config import DiTConfig
from cos_jax.wan.dit import WanDiT
from cos_jax.wan.t5 import T5Config, UMT5Encoder
from cos_jax.wan.text import TOKENIZER_FILE, PromptTokenizer
from cos_jax.wan.vae import VAEConfig, WanVAE

MODEL_INDEX = "model_index.json"
SUBFOLDERS = ("transformer", "vae", "text_encoder", "tokenizer")


@dataclasses.dataclass
class Components:
    """Everything a Wan2.2 pipeline runs: `experts` is (dit,) or (high-noise, low-noise)."""

    experts: tuple[WanDiT, ...]
    vae: WanVAE
    text_encoder: UMT5Encoder
    tokenizer: PromptTokenizer
    boundary_ratio: float | None = None  # the folder's expert switch (fraction of 1000 timesteps)
    scheduler_config: dict | None = None  # scheduler/scheduler_config.json, if any
    source: str = ""
    encoder_id: str = ""  # identifies (text encoder weights, tokenizer, text length) for the prompt cache

    @property
    def dit_config(self) -> DiTConfig:
        return self.experts[0].config

    @property
    def model_type(self) -> str:
        """'t2v' (T2V-A14B), 'i2v' (I2V-A14B) or 'ti2v' (TI2V-5B)."""
        return self.dit_config.model_type

    @property
    def vae_config(self) -> VAEConfig:
        return self.vae.config

    @property
    def text_len(self) -> int:
        return self.dit_config.text_len

    @property
    def size_multiple(self) -> tuple[int, int]:
        """(height, width) multiples a video must have: the VAE's spatial stride × the DiT's patch."""
        s = self.vae_config.spatial_stride
        _, ph, pw = self.dit_config.patch_size
        return s * ph, s * pw


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def _read_component(comp, kind: str, dtype) -> tuple[dict[str, np.ndarray], str, object]:
    """(tensors cast to `dtype`, layout, config) of one source component, resolved exactly as
    `cos-jax convert` resolves it (`cos_jax.convert.kinds`: layout detection, config.json or shapes)."""
    from cos_jax.convert.kinds import KINDS

    source, layout, config = KINDS[kind].resolve(comp)
    tensors = {name: np.asarray(source.read(name)).astype(dtype, copy=False) for name in source.infos}
    return tensors, layout, config


def _host_dtype(param_dtype) -> np.dtype:
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16) if jnp.dtype(param_dtype) == jnp.bfloat16 else np.dtype(np.float32)


def _encoder_id(folder: Path, text_len: int) -> str:
    """Weights files (name, size, mtime), the tokenizer file's bytes and the text length."""
    h = hashlib.sha256(f"umt5:{text_len}".encode())
    for f in sorted((folder / "text_encoder").iterdir()):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update((folder / "tokenizer" / TOKENIZER_FILE).read_bytes())
    return h.hexdigest()[:24]


def _check_diffusers_folder(folder: Path) -> None:
    if not folder.exists():
        raise FileNotFoundError(f"--model {str(folder)!r}: no such folder")
    if not (folder / MODEL_INDEX).is_file():
        raise FileNotFoundError(
            f"{folder} has no {MODEL_INDEX}; a pipeline needs a diffusers-format folder "
            "(model_index.json, transformer/, vae/, text_encoder/, tokenizer/)"
        )
    missing = [s for s in SUBFOLDERS if not (folder / s).is_dir()]
    if missing:
        raise FileNotFoundError(f"{folder}: the pipeline folder lacks {', '.join(s + '/' for s in missing)}")
    tok = folder / "tokenizer"
    if not (tok / TOKENIZER_FILE).is_file():
        found = sorted(p.name for p in tok.iterdir())
        raise FileNotFoundError(
            f"{tok} has no {TOKENIZER_FILE} (found: {found}); cos-jax reads the fast-tokenizer file. Write it once "
            f"with: python -c \"from transformers import AutoTokenizer as T; T.from_pretrained('{tok}')"
            f".save_pretrained('{tok}')\""
        )


def load_components(
    path: str | os.PathLike, *, param_dtype=jnp.float32, vae_precision: str = "fp32", progress: bool = False
) -> Components:
    """Build the pipeline components from a diffusers-format folder, converting in memory.

    DiT and umT5 parameters are stored in `param_dtype` (float32 or bfloat16); the VAE stays float32, its
    arithmetic float32 (`vae_precision="fp32"`) or TF32 on NVIDIA GPUs (`"tf32"`, see `with_conv_precision`).
    Raises `FileNotFoundError` / `ValueError` naming the missing or wrong piece and the fix.
    """
    from cos_jax.wan.vae.model import lax_precision, with_conv_precision

    lax_precision(vae_precision)  # a bad name is refused before anything is read
    components = _load_components(Path(path), param_dtype, progress)
    with_conv_precision(components.vae, vae_precision)
    return components


def _load_components(folder: Path, param_dtype, progress: bool) -> Components:
    from cos_jax.convert.layouts import discover
    from cos_jax.convert.load import dit_from_state_dict
    from cos_jax.convert.t5_keys import umt5_from_state_dict
    from cos_jax.convert.vae_keys import vae_from_state_dict

    if (folder / CONVERTED_MANIFEST).is_file():
        return _load_converted(folder, param_dtype)
    _check_diffusers_folder(folder)
    found = discover(folder)
    names = list(found.components)  # ["dit"] or ["high_noise", "low_noise"]
    host = _host_dtype(param_dtype)
    steps = tqdm(total=len(names) + 2, desc="loading", unit="part", disable=not progress)
    with steps:
        experts = []
        for name in names:
            tensors, layout, cfg = _read_component(found.components[name], "wan_dit", host)
            experts.append(dit_from_state_dict(tensors, cfg, layout, param_dtype=param_dtype))
            steps.update(1)
        tensors, layout, vae_cfg = _read_component(found.extras["vae"], "wan_vae", np.float32)
        vae = vae_from_state_dict(tensors, vae_cfg, layout)
        steps.update(1)
        tensors, layout, t5_cfg = _read_component(found.extras["text_encoder"], "umt5_encoder", host)
        text_encoder = umt5_from_state_dict(tensors, t5_cfg, layout, param_dtype=param_dtype)
        steps.update(1)
    dit_cfg = experts[0].config
    _check_fit(folder, experts, vae_cfg, t5_cfg)
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    return Components(
        experts=tuple(experts),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=PromptTokenizer(folder / "tokenizer", dit_cfg.text_len),
        boundary_ratio=found.boundary_ratio if len(experts) == 2 else None,
        scheduler_config=_read_json(scheduler_file) if scheduler_file.is_file() else None,
        source=str(folder),
        encoder_id=_encoder_id(folder, dit_cfg.text_len),
    )


CONVERTED_MANIFEST = "manifest.json"


def _check_fit(folder: Path, experts, vae_cfg: VAEConfig, t5_cfg: T5Config) -> None:
    dit_cfg = experts[0].config
    if len({e.config for e in experts}) != 1:
        raise ValueError(f"{folder}: the two experts have different configs")
    if t5_cfg.dim != dit_cfg.text_dim:
        raise ValueError(f"{folder}: text encoder width {t5_cfg.dim} != the DiT's text_dim {dit_cfg.text_dim}")
    if vae_cfg.z_dim != dit_cfg.out_dim:
        raise ValueError(f"{folder}: VAE z_dim {vae_cfg.z_dim} != the DiT's out_dim {dit_cfg.out_dim}")


def _load_converted(folder: Path, param_dtype) -> Components:
    """Components from a `cos-jax convert` folder (every component restored by `cos_jax.load`)."""
    from cos_jax.convert.checkpoint import load_checkpoint

    loaded = load_checkpoint(folder, param_dtype=param_dtype)
    missing = [n for n in ("vae", "text_encoder", "tokenizer") if getattr(loaded, n) is None]
    if missing or not loaded.experts:
        lacks = ", ".join(missing + ([] if loaded.experts else ["a DiT"]))
        raise FileNotFoundError(
            f"{folder}: the converted checkpoint lacks {lacks}; a pipeline needs every component. Re-run "
            f"`cos-jax convert SRC {folder}` on a folder that has them (official Wan2.2 or diffusers layout), "
            "or point --model at the diffusers folder itself"
        )
    experts = tuple(loaded.experts.values())
    dit_cfg = experts[0].config
    _check_fit(folder, experts, loaded.vae.config, loaded.text_encoder.config)
    tokenizer = Path(loaded.tokenizer)
    digest = hashlib.sha256(f"umt5:{dit_cfg.text_len}:{json.dumps(loaded.manifest, sort_keys=True)}".encode())
    digest.update((tokenizer / TOKENIZER_FILE).read_bytes())
    return Components(
        experts=experts,
        vae=loaded.vae,
        text_encoder=loaded.text_encoder,
        tokenizer=PromptTokenizer(tokenizer, dit_cfg.text_len),
        boundary_ratio=loaded.boundary_ratio if len(experts) == 2 else None,
        source=str(folder),
        encoder_id=digest.hexdigest()[:24],
    )


def random_components(dit: DiTConfig, vae: VAEConfig, t5: T5Config, *, param_dtype=jnp.bfloat16,
                      vae_precision: str = "fp32", boundary_ratio: float = 0.875, source: str = "random"
                      ) -> Components:  # fmt: skip
    """A two-expert pipeline with random weights and no checkpoint: experts of `dit` from seeds 0 and 1 and
    the umT5 encoder in `param_dtype`, a float32 VAE at `vae_precision`, the word-level test tokenizer
    (`wan_reference.write_tokenizer`). For benchmarks, throughput runs and tests.

    The weights are drawn with JAX's "rbg" PRNG: each parameter shape compiles its own sampling program,
    and threefry's take about three times longer to compile (a tiny pipeline: ~24 s against ~8 s on two
    CPU cores)."""
    import tempfile

    import jax

    from cos_jax.pipelines.wan_reference import write_tokenizer
    from cos_jax.wan.dit import init_dit
    from cos_jax.wan.t5 import init_umt5
    from cos_jax.wan.vae import init_vae, with_conv_precision

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = PromptTokenizer(write_tokenizer(tmp).parent, dit.text_len)  # read now; the folder may go
    with jax.default_prng_impl("rbg"):
        experts = tuple(init_dit(dit, seed=seed, param_dtype=param_dtype) for seed in (0, 1))
        vae_model = with_conv_precision(init_vae(vae), vae_precision)
        text_encoder = init_umt5(t5, param_dtype=param_dtype)
    return Components(experts, vae_model, text_encoder, tokenizer, boundary_ratio, source=source, encoder_id=source)
