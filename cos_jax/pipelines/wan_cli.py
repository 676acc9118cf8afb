"""`cos-jax sample --model DIR`: a whole Wan2.2 pipeline (prompt [+ first frame] → videos) from a
diffusers-format folder, writing the final video, x̂0 videos at chosen steps and a step × frame grid.

Output folder (`--out DIR`), one set per world (seed):
    trajectory.npz                  final latents, kept x̂0, σ/t schedule, metadata (`Trajectory.load`)
    video_world{w}.mp4              the final video
    x0/step{SSS}_world{w}.mp4       decoded x̂0 at each `--decode-steps` step
    x0_grid_world{w}.png            those steps (rows) × evenly spaced frames (columns)
    run.json                        what ran: model, prompts, size, sampler, files
Every file is written atomically (temp file, then rename).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cos_jax.errors import UsageError

GRID_FRAMES = 8  # columns of the step × frame grid
GRID_CELL = 96  # target cell height in pixels


def is_pipeline_folder(path: str) -> bool:
    return (Path(path) / "model_index.json").is_file()


def grid_frames(num_frames: int) -> list[int]:
    """Up to `GRID_FRAMES` evenly spaced frame indices, first and last included."""
    n = min(GRID_FRAMES, num_frames)
    return sorted({round(i * (num_frames - 1) / max(1, n - 1)) for i in range(n)})


def write_grid(path: Path, videos: np.ndarray, steps, title: str) -> Path:
    """A labelled step × frame PNG of x̂0 videos [K, T, H, W, 3] (frames subsampled to fit)."""
    from cos_jax.analysis.figures import save_grid_figure, step_frame_grid
    from cos_jax.arrays_io import atomic_write

    frames = grid_frames(videos.shape[1])
    stride = max(1, math.ceil(videos.shape[2] / GRID_CELL))
    small = videos[:, :, ::stride, ::stride]
    scale = max(1, min(3, GRID_CELL // small.shape[2]))
    grid = step_frame_grid(small[:, frames], range(len(steps)), range(len(frames)), scale=scale)
    return atomic_write(path, lambda tmp: save_grid_figure(tmp, grid, list(steps), frames, title))


def _steps(text: str | None, num_steps: int) -> list[int]:
    """'0-19,45-49' -> steps; 'all' -> every step; None -> none."""
    from cos_jax.sampling.cli_args import parse_steps

    if text is None:
        return []
    steps = parse_steps(text)
    return list(range(num_steps)) if steps is None else steps


def run(args) -> int:
    """The pipeline branch of `cos-jax sample` (see the module docstring)."""
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, KeyError, argparse.ArgumentTypeError) as err:
        raise UsageError(f"{err.args[0] if isinstance(err, KeyError) and err.args else err}") from None


def _run(args) -> int:
    import jax.numpy as jnp

    from cos_jax.arrays_io import atomic_write
    from cos_jax.pipelines import wan
    from cos_jax.pipelines.components import load_components
    from cos_jax.pipelines.images import read_image
    from cos_jax.tasks.video_io import write_mp4

    if not args.prompt:
        raise ValueError("--prompt is required with a pipeline folder")
    image = read_image(args.image) if args.image else None
    param_dtype = jnp.bfloat16 if args.policy == "bf16" else jnp.float32
    components = load_components(args.model, param_dtype=param_dtype, vae_precision=args.vae_precision, progress=True)
    wan.check_image_use(components, image is not None)
    kind = components.model_type
    size = args.size
    if size is None and image is not None:
        # Like the paper's tools: the first frame's size, rounded up to the model's multiples as DiffSynth does.
        (ih, iw), (mh, mw) = image.shape[:2], components.size_multiple
        size = (-(-ih // mh) * mh, -(-iw // mw) * mw)
        if size != (ih, iw):
            print(f"the first frame is {iw}x{ih}; sampling at {size[1]}x{size[0]} (multiples of {mw}x{mh})")
    height, width = size or wan.DEFAULT_SIZE[kind]
    frames = args.frames or wan.DEFAULT_FRAMES[kind]
    config = wan.sampling_config(components, args.preset, steps=args.steps, guidance=args.guidance)
    decode_steps = _steps(args.decode_steps, config.steps)
    keep = sorted(set(_steps(args.keep_steps, config.steps)) | set(decode_steps))
    bad = [s for s in keep if not 0 <= s < config.steps]
    if bad:
        raise ValueError(f"steps {bad} are outside 0-{config.steps - 1} (the sampler runs {config.steps} steps)")

    output = wan.generate(components, args.prompt, image=image, negative_prompt=args.negative_prompt, frames=frames,
                          height=height, width=width, seeds=args.seeds, config=config, resize=args.resize,
                          keep_steps=keep, policy=args.policy, cache_dir=args.cache_dir, progress=True)  # fmt: skip
    traj = output.trajectory
    traj.check_finite()  # before anything is written
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    traj.meta["model_spec"] = os.fspath(args.model)
    files = [traj.save(out / "trajectory.npz").name]
    fps = args.fps or wan.DEFAULT_FPS[kind]
    videos, x0_videos = wan.decode(components, output, decode_steps, batch_size=args.decode_batch, progress=True)
    jobs = [(f"video_world{w}.mp4", v) for w, v in enumerate(videos)]
    if decode_steps:
        jobs += [(f"x0/step{s:03d}_world{w}.mp4", x0_videos[k, w]) for k, s in enumerate(decode_steps)
                 for w in range(len(videos))]  # fmt: skip
    for name, video in tqdm(jobs, desc="writing", unit="video"):
        write_mp4(out / name, video, fps=fps)
        files.append(name)
    if decode_steps:
        for w in range(len(videos)):
            name = f"x0_grid_world{w}.png"
            write_grid(out / name, x0_videos[:, w], decode_steps, f"x̂0 of world {w} (seed {args.seeds[w]})")
            files.append(name)
    run_info = {
        **traj.meta["pipeline"],
        "seeds": list(args.seeds),
        "sampling": traj.meta["sampling"],
        "switch_step": traj.meta["switch_step"],
        "fps": fps,
        "decode_steps": decode_steps,
        "files": files,
    }
    atomic_write(out / "run.json", lambda tmp: Path(tmp).write_text(json.dumps(run_info, indent=1, ensure_ascii=False)))
    print(f"wrote {len(files) + 1} files to {out}: {len(videos)} video(s) of {frames}x{output.height}x{output.width}"
          f"{f', x̂0 at {len(decode_steps)} steps' if decode_steps else ''}")  # fmt: skip
    return 0
