"""Print end-to-end parity of the cos-jax Wan2.2 pipelines against diffusers' pipelines (tiny random, CPU).

    JAX_PLATFORMS=cpu python scripts/pipeline_parity.py [--steps 4] [--full-vae]

For each kind a random tiny pipeline is saved in diffusers format, cos-jax loads it (`load_components`),
and both sides sample from the same noise on the same σ grid: T2V-A14B with the folder's flow UniPC
(diffusers grid), I2V-A14B with the paper preset (Euler, DiffSynth grid, switch at t < 875), TI2V-5B with
an image on the official Wan2.2 grid. Reported: max|Δ|/max|ref| of the final latent and of the decoded
video, against stock diffusers (float32 timestep sinusoid) and against diffusers with the official float64
sinusoid swapped in; "VAE only" decodes diffusers' own final latent with the cos-jax VAE (the decoder's
share of the video gap). `--full-vae` uses the 4-level VAE layouts instead of the tests' 3-level ones.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import jax
import numpy as np

from cos_jax.pipelines import wan, wan_reference
from cos_jax.pipelines.components import load_components
from cos_jax.sampling import sampling_preset

PROMPT, NEGATIVE = "a red ball rolls left over the table", "blue cube"
SAMPLERS = {"t2v-a14b": "diffusers", "i2v-a14b": "paper", "ti2v-5b": "official-ti2v-5b"}


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


def compare(kind: str, folder: Path, steps: int, full_vae: bool) -> list[tuple]:
    spec, pipe = wan_reference.build_tiny_pipeline(folder, kind, full_vae=full_vae)
    components = load_components(folder)
    preset = SAMPLERS[kind]
    config = wan.sampling_config(components, preset, steps=steps, guidance=(4.0, 3.0))
    image = None
    if kind != "t2v-a14b":
        image = np.random.default_rng(1).integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)
        wan_reference.use_sigmas(pipe, config.schedule().sigmas, config.solver)
        pipe = wan_reference.with_image(pipe) if kind == "ti2v-5b" else pipe
    size = dict(frames=spec.frames, height=spec.height, width=spec.width)
    noise = np.asarray(jax.random.normal(jax.random.key(0), (1, *wan.latent_shape(components, **size))))
    out = wan.generate(components, PROMPT, image=image, negative_prompt=NEGATIVE, noise=noise, config=config,
                       resize="diffusers", keep_steps=[], **size)  # fmt: skip
    video = wan.decode_latents(components, out.trajectory.latent, as_uint8=False)
    first = 1 if kind == "ti2v-5b" else 0  # TI2V: diffusers' scheduler keeps frame 0 noisy (see the tests)
    rows = []
    for official in (False, True):
        wan_reference.set_official_time(pipe, official)
        ref_latent, ref_video, _ = wan_reference.run_diffusers(
            pipe, prompt=PROMPT, negative_prompt=NEGATIVE, noise=noise, steps=steps, guidance=config.guidance_high,
            guidance_2=config.guidance_low if len(components.experts) == 2 else None, image=image, **size,
        )  # fmt: skip
        latent_rel = _rel(out.trajectory.latent[:, first:], ref_latent[:, first:])
        if first:
            ref_latent[:, :1] = out.clean_latent[:, :1]
        vae_only = _rel(wan.decode_latents(components, ref_latent, as_uint8=False), ref_video)
        name = "official f64" if official else "stock f32"
        rows.append((kind, preset, name, latent_rel, _rel(video, ref_video), vae_only))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--full-vae", action="store_true", help="4-level VAEs (slower to compile)")
    args = parser.parse_args()
    sampling_preset("paper")  # fail early on a broken install
    print(f"{'pipeline':<10} {'sampler':<18} {'diffusers sinusoid':<19} {'latent rel':>11} {'video rel':>10} "
          f"{'VAE only':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for kind in SAMPLERS:
            for row in compare(kind, Path(tmp) / kind, args.steps, args.full_vae):
                print(
                    f"{row[0]:<10} {row[1]:<18} {row[2]:<19} {row[3]:>11.2e} {row[4]:>10.2e} {row[5]:>9.2e}", flush=True
                )


if __name__ == "__main__":
    main()
