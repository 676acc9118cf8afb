"""`cos-jax sample`: run one trajectory and write latents + x̂0 to an .npz (plus videos for the toy world)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from cos_jax.errors import UsageError
from cos_jax.sampling.cli_args import parse_guidance, parse_size, parse_steps


def _load_array(path: str | None, what: str):
    if path is None:
        return None
    from cos_jax.arrays_io import load_arrays

    try:
        return jnp.asarray(load_arrays(path))
    except (UsageError, FileNotFoundError) as err:
        raise UsageError(f"{what}: {err}") from None


def _random_model(spec: str):
    from cos_jax.wan.config import preset
    from cos_jax.wan.dit import init_dit

    name, _, seed = spec.removeprefix("random:").partition(":")
    try:
        config = preset(name)
    except KeyError as err:
        raise UsageError(f"--model {spec!r}: {err.args[0]}") from None
    if not (seed or "0").isdigit():
        raise UsageError(f"--model {spec!r}: the seed after the preset must be an integer, e.g. random:toy:3")
    return init_dit(config, seed=int(seed or 0))


def _checkpoint_experts(folder: str):
    """One DiT, or the (high, low) pair of an A14B folder written by `cos-jax convert`."""
    import json
    from pathlib import Path

    from cos_jax.loading import load

    manifest = Path(folder) / "manifest.json"
    if not manifest.is_file():
        raise UsageError(f"--model {folder!r}: not 'toy', 'random:PRESET' nor a folder from `cos-jax convert`")
    components = json.loads(manifest.read_text())["components"]
    dits = [n for n in ("dit", "high_noise", "low_noise") if n in components]
    if not dits:
        raise UsageError(f"--model {folder!r}: the checkpoint holds no DiT (components: {list(components)})")
    experts = tuple(load(folder, dits).experts.values())
    return experts if len(experts) == 2 else experts[0]


def _run_toy(args) -> int:
    from cos_jax.loading import load
    from cos_jax.pipelines.images import read_image
    from cos_jax.pipelines.toy import decode_video, generate, toy_sampling
    from cos_jax.tasks import TASKS
    from cos_jax.tasks.video_io import write_mp4

    model, spec = load("toy")
    if args.image:
        if not args.prompt:
            raise UsageError("--image needs --prompt")
        frame, prompt = read_image(args.image), args.prompt
        if frame.shape[:2] != (spec.resolution, spec.resolution):
            raise UsageError(f"--image {args.image!r} is {frame.shape[1]}x{frame.shape[0]}; the toy world takes "
                             f"{spec.resolution}x{spec.resolution} first frames (resize it)")  # fmt: skip
    else:
        from cos_jax.train.evaluate import held_out_samples

        if args.task.partition("@")[0] not in TASKS:
            raise UsageError(f"--task {args.task!r}: unknown task; choose from {', '.join(TASKS)}")

        sample = held_out_samples([args.task], args.index + 1, spec)[args.index]
        frame, prompt = sample.first_frame, sample.prompt
    config = toy_sampling() if args.preset in (None, "paper") else args.preset
    worlds = len(args.seeds)
    traj = generate(model, spec, np.stack([frame] * worlds), [prompt] * worlds, args.seeds, config=config,
                    keep_steps=parse_steps(args.keep_steps), progress=True)  # fmt: skip
    traj.meta.update(model_spec="toy", prompt=prompt)
    path = traj.save(args.out)
    videos = decode_video(spec, traj.latent)
    for w, video in enumerate(videos):
        write_mp4(path.with_name(f"{path.stem}_world{w}.mp4"), video)
    print(f"wrote {path} (latent {traj.latent.shape}, x̂0 at {len(traj.x0_steps)} steps) and {worlds} mp4 videos")
    return 0


def _run(args) -> int:
    from cos_jax.sampling import Conditions, sample

    if args.model == "toy":
        return _run_toy(args)
    from cos_jax.pipelines.wan_cli import is_pipeline_folder

    if is_pipeline_folder(args.model):
        from cos_jax.pipelines.wan_cli import run

        return run(args)
    if args.model.startswith("random:"):
        high = _random_model(args.model)
        model = (high, _random_model(args.low_model)) if args.low_model else high
    else:
        model = _checkpoint_experts(args.model)
    cfg = (model[0] if isinstance(model, tuple) else model).config
    parts = args.latent.split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"--latent {args.latent!r}: expected FxHxW latent sizes, e.g. 21x60x104 (480x832x81)")
    frames, height, width = (int(v) for v in parts)
    rng = np.random.default_rng(0)
    context = _load_array(args.context, "--context")
    if context is None:
        context = jnp.asarray(rng.standard_normal((1, cfg.text_len, cfg.text_dim)), jnp.float32)
    negative = _load_array(args.negative, "--negative")
    negative = jnp.zeros_like(context) if negative is None else negative
    y = _load_array(args.y, "--y")
    if cfg.model_type == "i2v" and y is None:
        y = jnp.zeros((1, frames, height, width, cfg.in_dim - cfg.out_dim))
    cond = Conditions(context=context[None] if context.ndim == 2 else context,
                      negative=negative[None] if negative.ndim == 2 else negative, y=y)  # fmt: skip
    traj = sample(model, cond, args.preset or "paper", (frames, height, width, cfg.out_dim), seeds=args.seeds,
                  keep_steps=parse_steps(args.keep_steps), policy=args.policy, progress=True)  # fmt: skip
    traj.meta["model_spec"] = args.model
    path = traj.save(args.out)
    print(f"wrote {path}: latent {traj.latent.shape}, x̂0 at {len(traj.x0_steps)} steps")
    return 0


def add_commands(subparsers) -> None:

    p = subparsers.add_parser(
        "sample", help="sample one trajectory; write latents and x̂0 per step (.npz), or videos for a pipeline folder"
    )
    p.add_argument(
        "--model",
        default="toy",
        help="toy (default, the shipped toy world); a diffusers-format Wan2.2 folder (model_index.json: the whole "
        "pipeline, videos out); a folder from `cos-jax convert` (DiT only, latents out); or random:PRESET[:SEED]",
    )
    p.add_argument("--low-model", default=None, help="random:PRESET[:SEED] low-noise expert for a random model")
    p.add_argument("--task", default="select_next", help="toy: sample a held-out puzzle of this task")
    p.add_argument("--index", type=int, default=0, help="toy: which held-out puzzle")
    p.add_argument("--image", default=None, help="first frame (RGB PNG/JPEG): toy 32x32, I2V-A14B, TI2V-5B")
    p.add_argument("--prompt", default=None, help="the prompt (toy with --image; pipeline folders)")
    p.add_argument("--negative-prompt", default=None, help="pipeline: negative prompt (default: Wan2.2's)")
    p.add_argument(
        "--preset",
        default=None,
        help="sampling preset: paper, official-t2v-a14b, official-i2v-a14b, official-ti2v-5b, or diffusers (the "
        "folder's own scheduler); default: paper for toy/random, the model's official preset for pipelines",
    )
    p.add_argument("--steps", type=int, default=None, help="pipeline: override the preset's step count")
    p.add_argument("--guidance", type=parse_guidance, default=None, help="pipeline: CFG scale, or high,low (4,3)")
    p.add_argument("--frames", type=int, default=None, help="pipeline: frames, 4n+1 (default 81; TI2V 121)")
    p.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="pipeline: WIDTH*HEIGHT as in Wan2.2's generate.py (832*480 is landscape 480p; default 832*480, "
        "TI2V 1280*704, or the image's size with --image)",
    )
    p.add_argument(
        "--resize",
        default="official",
        choices=["official", "diffsynth", "diffusers"],
        help="pipeline: first-frame resize rules (official Wan2.2, DiffSynth/paper stretch, diffusers Lanczos)",
    )
    p.add_argument("--decode-steps", default=None, help="pipeline: decode x̂0 at these steps, e.g. 0-19,45-49 or all")
    p.add_argument("--decode-batch", type=int, default=None, help="pipeline: videos per VAE call (default: all)")
    p.add_argument("--vae-precision", default="fp32", choices=("fp32", "tf32"),
                   help="pipeline: VAE arithmetic, float32 or TF32 on NVIDIA GPUs (~6x faster decode)")  # fmt: skip
    p.add_argument("--fps", type=int, default=None, help="pipeline: mp4 frame rate (default 16; TI2V 24)")
    p.add_argument("--cache-dir", default=None, help="pipeline: cache prompt embeddings in this folder")
    p.add_argument("--latent", default="5x8x8", help="latent FxHxW for non-toy models (21x60x104 = 480x832x81)")
    p.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0], help="one world per seed")
    p.add_argument("--context", help=".npy text embedding [T, text_dim] or [1|W, T, text_dim]")
    p.add_argument("--negative", help=".npy negative-prompt embedding (default zeros)")
    p.add_argument("--y", help=".npy I2V conditioning [1|W, F, H, W, Cy]")
    p.add_argument(
        "--keep-steps",
        default=None,
        help="steps whose x̂0 to keep in the .npz, e.g. 0-19,45-49 (default all; pipelines: the decode steps)",
    )
    p.add_argument("--policy", default="fp32", choices=["fp32", "bf16"], help="precision (bf16: bf16 weights too)")
    p.add_argument("--out", required=True, help="output .npz; for a pipeline folder, an output folder")
    p.set_defaults(func=_run)
