"""`cos-jax convert` and `cos-jax validate` (registered on the main parser by `add_commands`)."""

from __future__ import annotations

import argparse
import os

DEFAULT_TOLERANCE = 1e-4


def _convert(args) -> int:
    from cos_jax.convert.convert import convert_checkpoint
    from cos_jax.wan.config import preset

    manifest = convert_checkpoint(
        args.src,
        args.out,
        lora=args.lora,
        lora_high=args.lora_high,
        lora_low=args.lora_low,
        lora_scale=args.lora_scale,
        dtype=args.dtype,
        vae_dtype=args.vae_dtype,
        components=args.components,
        layout=args.layout,
        config=preset(args.preset) if args.preset else None,
        overwrite=args.overwrite,
        progress=not args.quiet,
        expect=args.expect,
    )
    mb = manifest["bytes_read"] / 1e6
    print(f"wrote {args.out}: {', '.join(manifest['components'])} ({manifest['dtype']}); "
          f"{mb:,.1f} MB in {manifest['seconds']:.1f} s = {mb / max(manifest['seconds'], 1e-9):,.1f} MB/s")  # fmt: skip
    for name, comp in manifest["components"].items():
        if comp["kind"] == "tokenizer":
            print(f"  {name:<12} files: {', '.join(os.path.basename(f) for f in comp['source_files'])}")
            continue
        line = (f"  {name:<12} {comp['layout']:<9} {comp['dtype']:<8} preset={comp['preset']} "
                f"tensors={comp['tensors']} parameters={comp['parameters']:,}")  # fmt: skip
        if "loras" in comp:
            line += " LoRAs: " + (
                ", ".join(f"{x['file']} x{x['scale']:g} (rank {x['ranks']})" for x in comp["loras"]) or "none"
            )
        print(line)
    if manifest["boundary_ratio"] is not None:
        print(f"  boundary_ratio {manifest['boundary_ratio']} ({manifest['boundary_ratio_from']})")
    return 0


def _validate(args) -> int:
    from cos_jax.convert.validate import validate

    loras = {}
    for comp, file in (("dit", args.lora), ("high_noise", args.lora_high), ("low_noise", args.lora_low)):
        if file:
            loras[comp] = (file, args.lora_scale)
    latent = tuple(int(v) for v in args.latent.split(","))
    other = f"converted checkpoint {args.converted}" if args.converted else "the source converted in memory"
    mode = "block by block" if args.stream else "whole model"
    print(f"diffusers WanTransformer3DModel (fp32, official sinusoid) vs cos-jax from {other}; latent {latent}; "
          f"{mode}", flush=True)  # fmt: skip
    results = validate(
        args.src, args.converted, component=args.component, layers=args.layers, per_block=args.per_block,
        stream=args.stream, latent=latent, seed=args.seed, loras=loras,
        report=_stream_reporter(args.tolerance, args.per_block) if args.stream else None,
    )  # fmt: skip
    failed = 0
    for r in results:
        bad = r.failures(args.tolerance)
        failed += bool(bad)
        worst = ""
        if r.isolated:
            name, err = max(((k, v) for k, v in r.isolated.items() if k.startswith("block")), key=lambda kv: kv[1],
                            default=("-", float("nan")))  # fmt: skip
            worst = f"  (worst {name}: {err:.3e})"
        print(f"{r.component:<10} layers={r.layers:<3} max|Δ|/max|ref| = {r.relative:.3e}  "
              f"{'FAIL: ' + ', '.join(bad) if bad else 'ok'}{worst}")  # fmt: skip
        if not args.stream:
            for i, b in enumerate(r.per_block or []):
                print(f"    block {i:>3}: {b:.3e}")
    print(f"tolerance {args.tolerance:g}: " + ("all passed" if not failed else f"{failed} component(s) FAILED"))
    return 1 if failed else 0


def _stream_reporter(tolerance: float, every: bool):
    """Prints each part as it finishes: all of them with --per-block, otherwise only those above tolerance."""

    def report(component: str, part: str, error: float, chained: float | None = None) -> None:
        bad = not error <= tolerance
        if every or bad:
            chain = f"  (chained {chained:.3e})" if chained is not None else ""
            print(f"  {component:<10} {part:<16} {error:.3e}{chain}{'  FAIL' if bad else ''}", flush=True)

    return report


def _lora_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lora", help="LoRA for a single-DiT checkpoint (DiffSynth format)")
    p.add_argument("--lora-high", help="LoRA for the high-noise expert (e.g. VBVR's high_noise_lora.safetensors)")
    p.add_argument("--lora-low", help="LoRA for the low-noise expert (e.g. VBVR's low_noise_lora.safetensors)")
    p.add_argument("--lora-scale", type=float, default=1.0, help="W + scale·B·A (DiffSynth's alpha; default 1)")


def add_commands(subparsers) -> None:
    """Register `convert` and `validate` on the `cos-jax` sub-command parser."""
    p = subparsers.add_parser(
        "convert",
        help="PyTorch Wan2.2 checkpoint (official / diffusers / single file, + LoRAs) -> cos-jax Orbax checkpoint",
        description="Convert SRC (an official or diffusers folder, a component folder, a .safetensors, an index "
        ".json or a .pth) to a cos-jax checkpoint folder OUT (Orbax per component + manifest.json). From model "
        "folders the VAE, the umT5 text encoder and the tokenizer files come along.",
    )
    p.add_argument("src")
    p.add_argument("out")
    _lora_args(p)
    p.add_argument(
        "--dtype", choices=["bf16", "fp32"], default="bf16", help="stored dtype of the DiT(s) and text encoder (bf16)"
    )
    p.add_argument(
        "--vae-dtype", choices=["bf16", "fp32"], default="fp32", help="stored dtype of the VAE (fp32, as official)"
    )
    p.add_argument(
        "--components",
        help="comma-separated subset of dit,vae,text (text = umT5 encoder + tokenizer); default: all found",
    )
    p.add_argument("--layout", choices=["official", "diffusers"], help="override the detected key layout")
    p.add_argument("--preset", help="override the config read from config.json / the shapes (e.g. i2v_a14b)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (atomically)")
    p.add_argument(
        "--expect",
        metavar="MANIFEST",
        help="an expected manifest (convert/expected/*.json): refuse, before writing, a checkpoint whose "
        "components, tensor or parameter counts, presets or LoRA ranks differ",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_convert)

    v = subparsers.add_parser(
        "validate",
        help="compare a checkpoint in diffusers (PyTorch) with cos-jax on random inputs",
        description="Load SRC with diffusers' WanTransformer3DModel and the cos-jax DiT (from --converted, or "
        "SRC converted in memory), run both on the same random inputs, print max relative error, exit 1 "
        "above --tolerance. For full-size checkpoints on a small host use --stream (or --layers N).",
    )
    v.add_argument("src")
    v.add_argument("--converted", help="a cos-jax checkpoint folder made from SRC by `cos-jax convert`")
    v.add_argument("--component", help="only this component (dit, high_noise, low_noise)")
    v.add_argument("--layers", type=int, help="keep only the first N blocks (embeddings and head stay)")
    v.add_argument("--per-block", action="store_true", help="also print the relative error after every block")
    v.add_argument(
        "--stream",
        action="store_true",
        help="block by block at full depth: peak memory about one block per framework (any size on a 24 GB host); "
        "each block gets the reference's input, so a bad block is named",
    )
    v.add_argument("--latent", default="2,4,4", help="latent F,H,W of the random input (default 2,4,4)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="max relative error (default 1e-4)")
    _lora_args(v)
    v.set_defaults(func=_validate)
