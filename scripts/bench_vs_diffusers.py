"""cos-jax and diffusers side by side in one process on one GPU: DiT forward (batch 1 and 2), VAE encode and
decode (fp32, tf32, bf16), batched x̂0 decoding (seconds per decoded step, cos-jax) and a whole I2V sample
(umT5, CFG steps over both experts, VAE decode); random full-size weights; seconds, peaks, ratios as JSON.

    python scripts/bench_vs_diffusers.py --out benchmarks/vs_diffusers_h200.json        # GPU, full size
    python scripts/bench_vs_diffusers.py --parts pipeline --repeats 1 --out pipeline.json   # 955 s on an H200
    python scripts/bench_vs_diffusers.py --parts pipeline --steps 10 --repeats 1 --out p10.json   # 289 s, H200
    JAX_PLATFORMS=cpu python scripts/bench_vs_diffusers.py --tiny --out /tmp/vs.json    # a smoke run on CPU

Each measurement builds its model on the device, runs once to compile/warm up and reports the median of
`--repeats` timed runs (torch: after `cuda.synchronize`; JAX: after `block_until_ready`); for the whole
sample diffusers warms up on 2 steps (which run every kernel), cos-jax on the whole sample (which compiles
its program). PyTorch runs first and frees its memory before JAX allocates (JAX's preallocation is turned
off), so neither side's memory limits the other. diffusers' attention is its default (PyTorch SDPA, which
picks cuDNN/flash on GPUs).

VAE precisions: `fp32` is float32 arithmetic on both sides (PyTorch's TF32 switched off, cos-jax's shipped
`fp32` VAE precision); `tf32` lets float32 convs and matmuls use TF32 tensor cores on both sides
(PyTorch's default for convs, cos-jax `with_conv_precision(vae, "tf32")`); `bf16` is bfloat16 weights and
activations. The whole-sample comparison decodes with an fp32 VAE at PyTorch's default (TF32 convs) on
both sides, and x̂0 decoding uses the same.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse
import gc
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch
from bench_common import median_seconds, peak_gib, plan_gib

from cos_jax.arrays_io import atomic_write
from cos_jax.convert.reference import diffusers_config
from cos_jax.convert.vae_reference import diffusers_vae_config
from cos_jax.wan.config import DiTConfig, preset
from cos_jax.wan.dit import init_dit
from cos_jax.wan.t5 import UMT5_XXL
from cos_jax.wan.vae import init_vae, vae_preset, with_conv_precision

TORCH_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# precision -> (torch dtype, jax dtype, TF32 allowed, cos-jax VAE precision)
PRECISIONS = {
    "fp32": (torch.float32, jnp.float32, False, "fp32"),
    "tf32": (torch.float32, jnp.float32, True, "tf32"),
    "bf16": (torch.bfloat16, jnp.bfloat16, False, "fp32"),
}


def allow_tf32(convs: bool, matmuls: bool | None = None) -> None:
    """PyTorch's TF32 switches: convolutions, and matrix products (the same as convs unless given)."""
    torch.backends.cudnn.allow_tf32 = convs
    torch.backends.cuda.matmul.allow_tf32 = convs if matmuls is None else matmuls


def timed(run, sync, repeats: int, warmup: bool = True) -> float:
    """Median seconds of `repeats` calls of `run` (after one warm-up call unless `warmup=False`)."""
    return round(median_seconds(run, repeats, sync, warmup), 4)


def torch_sync(out):
    if TORCH_DEVICE == "cuda":
        torch.cuda.synchronize()
    return out


def torch_peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if TORCH_DEVICE == "cuda" else None


def free_torch() -> None:
    gc.collect()
    if TORCH_DEVICE == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _torch_model(build, dtype):
    """A diffusers model built on the device in `dtype`, its fp32-kept modules in fp32 (as `from_pretrained`)."""
    with torch.device(TORCH_DEVICE):
        model = build().to(dtype).eval()
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if keep & set(name.split(".")) and tensor.is_floating_point():
            tensor.data = tensor.data.float()
    return model


def _torch_dit(cfg: DiTConfig, x, t, ctx, repeats: int) -> tuple[float, float | None]:
    import diffusers

    ref = _torch_model(lambda: diffusers.WanTransformer3DModel(**diffusers_config(cfg)), torch.bfloat16)
    tx = torch.from_numpy(x.transpose(0, 4, 1, 2, 3)).to(TORCH_DEVICE, torch.bfloat16)
    tc = torch.from_numpy(ctx).to(TORCH_DEVICE, torch.bfloat16)
    tt = torch.from_numpy(t).to(TORCH_DEVICE)
    with torch.no_grad():
        seconds = timed(lambda: ref(tx, tt, tc, return_dict=False)[0], torch_sync, repeats)
    return seconds, torch_peak_gib()


def _jax_dit(cfg: DiTConfig, x, t, ctx, repeats: int) -> tuple[float, float | None]:
    model = init_dit(cfg, param_dtype=jnp.bfloat16)
    y = jnp.asarray(x[..., cfg.out_dim :]) if cfg.in_dim > cfg.out_dim else None
    args = (jnp.asarray(x[..., : cfg.out_dim]), jnp.asarray(t), jnp.asarray(ctx), y)
    forward = jax.jit(lambda m, x, t, c, y: m(x, t, c, y, policy="bf16"))
    return timed(lambda: forward(model, *args), jax.block_until_ready, repeats), peak_gib()


def dit_pair(cfg: DiTConfig, latent: tuple[int, int, int], batch: int, repeats: int) -> dict:
    """One bf16 forward of the expert at `latent` (F, H, W) and `batch` on both sides."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *latent, cfg.in_dim)).astype(np.float32)
    ctx = rng.standard_normal((batch, cfg.text_len, cfg.text_dim)).astype(np.float32)
    t = np.full((batch,), 500.0, np.float32)
    torch_s, torch_mem = _torch_dit(cfg, x, t, ctx, repeats)
    free_torch()
    jax_s, jax_mem = _jax_dit(cfg, x, t, ctx, repeats)
    return {"cos_jax_s": jax_s, "diffusers_s": torch_s, "speedup": round(torch_s / jax_s, 3),
            "cos_jax_peak_gib": jax_mem, "diffusers_peak_gib": torch_mem}  # fmt: skip


def _torch_vae(cfg, z, video, dtype, repeats: int) -> dict:
    import diffusers

    ref = _torch_model(lambda: diffusers.AutoencoderKLWan(**diffusers_vae_config(cfg)), dtype)
    tz = torch.from_numpy(z.transpose(0, 4, 1, 2, 3)).to(TORCH_DEVICE, dtype)
    tv = torch.from_numpy(video.transpose(0, 4, 1, 2, 3)).to(TORCH_DEVICE, dtype)
    out = {}
    with torch.no_grad():
        out["decode_diffusers_s"] = timed(lambda: ref.decode(tz, return_dict=False)[0], torch_sync, repeats)
        out["decode_diffusers_peak_gib"] = torch_peak_gib()
        free_torch()
        out["encode_diffusers_s"] = timed(lambda: ref.encode(tv).latent_dist.mean, torch_sync, repeats)
        out["encode_diffusers_peak_gib"] = torch_peak_gib()
    return out


def _jax_vae(cfg, z, video, dtype, vae_precision: str, repeats: int) -> dict:
    """cos-jax's side: times, XLA's memory plan of each call, and the process's peak so far (which includes
    the autotuning scratch of compilation; JAX cannot reset it)."""
    model = with_conv_precision(init_vae(cfg, param_dtype=dtype), vae_precision)
    jz, jv = jnp.asarray(z, dtype), jnp.asarray(video, dtype)
    decode = jax.jit(lambda m, z: m.decode(z)).lower(model, jz).compile()
    encode = jax.jit(lambda m, v: m.encode(v)).lower(model, jv).compile()
    return {
        "decode_cos_jax_s": timed(lambda: decode(model, jz), jax.block_until_ready, repeats),
        "decode_cos_jax_plan_gib": plan_gib(decode).get("total_gib"),
        "encode_cos_jax_s": timed(lambda: encode(model, jv), jax.block_until_ready, repeats),
        "encode_cos_jax_plan_gib": plan_gib(encode).get("total_gib"),
        "cos_jax_process_peak_gib": peak_gib(),
    }


def vae_pair(name: str, latent: tuple[int, int, int], frames: int, precision: str, repeats: int) -> dict:
    """VAE decode of a latent [1, F, H, W, z] and encode of its video size, in `precision` on both sides."""
    torch_dtype, jax_dtype, tf32, vae_precision = PRECISIONS[precision]
    cfg = vae_preset(name)
    allow_tf32(tf32)
    s = cfg.spatial_stride
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1, *latent, cfg.z_dim)).astype(np.float32)
    video = rng.uniform(-1, 1, (1, frames, latent[1] * s, latent[2] * s, 3)).astype(np.float32)
    out = _torch_vae(cfg, z, video, torch_dtype, repeats)
    free_torch()
    out |= _jax_vae(cfg, z, video, jax_dtype, vae_precision, repeats)
    out["decode_speedup"] = round(out["decode_diffusers_s"] / out["decode_cos_jax_s"], 3)
    out["encode_speedup"] = round(out["encode_diffusers_s"] / out["encode_cos_jax_s"], 3)
    return out


def x0_decode(vae_name: str, latent, steps: int, batches: tuple[int, ...]) -> dict:
    """cos-jax: x̂0 of `steps` steps decoded with `decode_many` in batches: seconds per decoded step (tf32)."""
    from cos_jax.wan.vae.model import decode_many

    cfg = vae_preset(vae_name)
    model = with_conv_precision(init_vae(cfg), "tf32")
    z = jnp.asarray(np.random.default_rng(0).standard_normal((steps, *latent, cfg.z_dim)), jnp.float32)
    out = {"steps": steps}
    for b in batches:
        decode_many(model, z[:b], b)  # compile this batch shape
        start = time.perf_counter()
        decode_many(model, z, b)
        out[f"batch{b}_s_per_step"] = round((time.perf_counter() - start) / steps, 4)
    out["cos_jax_peak_gib"] = peak_gib()
    return out


def _pipeline_inputs(height: int, width: int):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), np.uint8)
    return image, "a red ball rolls left over the table", "blue cube"


def _torch_pipeline(cfg, t5, vae_name, tokenizer_dir, frames, height, width, steps, repeats) -> tuple[float, float]:
    import diffusers
    import transformers
    from PIL import Image

    from cos_jax.pipelines.wan_reference import _tokenizer

    hf = transformers.UMT5Config(vocab_size=t5.vocab_size, d_model=t5.dim, d_kv=t5.head_dim, d_ff=t5.ffn_dim,
                                 num_layers=t5.num_layers, num_heads=t5.num_heads, feed_forward_proj="gated-gelu",
                                 relative_attention_num_buckets=t5.num_buckets,
                                 relative_attention_max_distance=t5.max_distance)  # fmt: skip
    vae = vae_preset(vae_name)
    pipe = diffusers.WanImageToVideoPipeline(
        tokenizer=_tokenizer(tokenizer_dir),
        text_encoder=_torch_model(lambda: transformers.UMT5EncoderModel(hf), torch.bfloat16),
        vae=_torch_model(lambda: diffusers.AutoencoderKLWan(**diffusers_vae_config(vae)), torch.float32),
        scheduler=diffusers.UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                                    num_train_timesteps=1000, flow_shift=5.0),
        transformer=_torch_model(lambda: diffusers.WanTransformer3DModel(**diffusers_config(cfg)), torch.bfloat16),
        transformer_2=_torch_model(lambda: diffusers.WanTransformer3DModel(**diffusers_config(cfg)), torch.bfloat16),
        boundary_ratio=0.875,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    image, prompt, negative = _pipeline_inputs(height, width)
    kwargs = dict(image=Image.fromarray(image), prompt=prompt, negative_prompt=negative, num_frames=frames,
                  height=height, width=width, num_inference_steps=steps, guidance_scale=5.0,
                  output_type="np")  # fmt: skip
    with torch.no_grad():
        torch_sync(pipe(**{**kwargs, "num_inference_steps": 2}).frames)  # warm-up: every kernel, 2 steps
        seconds = timed(lambda: pipe(**kwargs).frames, torch_sync, repeats, warmup=False)
    return seconds, torch_peak_gib()


def _jax_pipeline(cfg, t5, vae_name, frames, height, width, steps, repeats) -> tuple[float, float]:
    from cos_jax.pipelines import wan
    from cos_jax.pipelines.components import random_components
    from cos_jax.sampling import sampling_preset

    components = random_components(cfg, vae_preset(vae_name), t5, vae_precision="tf32")
    image, prompt, negative = _pipeline_inputs(height, width)
    config = sampling_preset("paper").replace(steps=steps)

    def run():
        out = wan.generate(components, prompt, image=image, negative_prompt=negative, frames=frames, height=height,
                           width=width, config=config, keep_steps=[], policy="bf16")  # fmt: skip
        return wan.decode(components, out)

    return timed(run, lambda out: out, repeats), peak_gib()


def pipeline_pair(cfg: DiTConfig, t5, vae_name: str, latent, steps: int, repeats: int, partial=print) -> dict:
    """A whole I2V sample (prompt encoding, `steps` steps with CFG over both experts, VAE decode) on both sides;
    `partial(dict)` gets diffusers' side as soon as it is done (a run killed during cos-jax's keeps it)."""
    import tempfile

    from cos_jax.pipelines.wan_reference import write_tokenizer

    vae = vae_preset(vae_name)
    frames = vae.pixel_frames(latent[0])
    height, width = latent[1] * vae.spatial_stride, latent[2] * vae.spatial_stride
    allow_tf32(convs=True, matmuls=False)  # PyTorch's defaults: TF32 convs (the VAE), float32 matmuls
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(tmp)
        args = (cfg, t5, vae_name, tmp, frames, height, width, steps, repeats)
        torch_s, torch_mem = _torch_pipeline(*args)
        partial({"steps": steps, "diffusers_s": torch_s, "diffusers_peak_gib": torch_mem})
        free_torch()
        jax_s, jax_mem = _jax_pipeline(cfg, t5, vae_name, frames, height, width, steps, repeats)
    return {"steps": steps, "vae": "fp32 weights, TF32 convs on both sides", "cos_jax_s": jax_s,
            "diffusers_s": torch_s, "speedup": round(torch_s / jax_s, 3), "cos_jax_peak_gib": jax_mem,
            "diffusers_peak_gib": torch_mem}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="i2v_a14b")
    p.add_argument("--vae", default="wan21", help="the VAE preset of the model (I2V-A14B: wan21)")
    p.add_argument("--latent", default="21x60x104", help="F x H x W of the latent (21x60x104 = 480x832x81)")
    p.add_argument("--parts", default="dit,vae,x0decode,pipeline", help="comma list of dit, vae, x0decode, pipeline")
    p.add_argument("--steps", type=int, default=50, help="pipeline: denoising steps")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="2-layer narrow configs at a small size (smoke run)")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()

    cfg = preset(args.preset)
    latent = tuple(int(v) for v in args.latent.split("x"))
    t5 = UMT5_XXL
    if args.tiny:
        cfg, latent = cfg.replace(dim=128, ffn_dim=256, num_heads=2, num_layers=2, text_len=32, text_dim=32), (3, 8, 8)
        t5 = t5.replace(vocab_size=64, dim=32, head_dim=8, num_heads=4, ffn_dim=48, num_layers=2)
    frames = vae_preset(args.vae).pixel_frames(latent[0])
    import diffusers

    diffusers.utils.logging.set_verbosity_error()  # the fp32-kept modules are handled in _torch_model
    result = {"device": jax.devices()[0].device_kind, "torch_device": TORCH_DEVICE, "jax": jax.__version__,
              "torch": torch.__version__, "diffusers": diffusers.__version__, "preset": args.preset,
              "latent": list(latent), "frames": frames, "tokens": cfg.tokens(*latent), "tiny": args.tiny,
              "repeats": args.repeats}  # fmt: skip
    parts = set(args.parts.split(","))

    def save(part: str | None = None, value: dict | None = None) -> None:
        """Write what is measured so far (atomically), so a run killed later keeps the finished parts."""
        if part is not None:
            result[part] = value
            print(f"{part}:", value, flush=True)
        if args.out:
            atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1) + "\n"))

    save()  # the versions and settings, before the first part
    if "dit" in parts:
        for batch in (1, 2):
            save(f"dit_batch{batch}", dit_pair(cfg, latent, batch, args.repeats))
    if "vae" in parts:
        for precision in PRECISIONS:
            save(f"vae_{precision}", vae_pair(args.vae, latent, frames, precision, args.repeats))
    if "x0decode" in parts:
        save("x0_decode", x0_decode(args.vae, latent, 8, (1, 2, 4)))
    if "pipeline" in parts:
        done = pipeline_pair(cfg, t5, args.vae, latent, args.steps, args.repeats,
                             partial=lambda side: save("pipeline", side))  # fmt: skip
        save("pipeline", done)


if __name__ == "__main__":
    main()
