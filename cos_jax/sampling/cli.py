"""`cos-jax sample`: run one trajectory and write latents + x̂0 (+ captures) to an .npz."""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np


def parse_steps(text: str | None) -> list[int] | None:
    """'0-19,45,47-49' -> [0, …, 19, 45, 47, 48, 49]; None/'all' -> None."""
    if text in (None, "", "all"):
        return None
    steps: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise argparse.ArgumentTypeError(f"bad step range {part!r} in {text!r}; use e.g. 0-19,45-49")
        steps += list(range(int(lo), int(hi or lo) + 1))
    return steps


def _load_array(path: str | None, what: str):
    if path is None:
        return None
    try:
        return jnp.asarray(np.load(path))
    except OSError as err:
        raise SystemExit(f"cannot read {what} from {path!r}: {err}") from None


def _random_model(spec: str):
    from cos_jax.wan.config import preset
    from cos_jax.wan.dit import init_dit

    name, _, seed = spec.removeprefix("random:").partition(":")
    return init_dit(preset(name), seed=int(seed or 0))


def _run(args) -> int:
    from cos_jax.sampling import Conditions, sample

    if not args.model.startswith("random:"):
        raise SystemExit(f"--model {args.model!r}: only random:PRESET[:SEED] models are available until checkpoints "
                         "can be loaded; e.g. --model random:toy")  # fmt: skip
    high = _random_model(args.model)
    model = (high, _random_model(args.low_model)) if args.low_model else high
    cfg = high.config
    frames, height, width = (int(v) for v in args.latent.split("x"))
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
    traj = sample(model, cond, args.preset, (frames, height, width, cfg.out_dim), seeds=args.seeds,
                  keep_steps=parse_steps(args.keep_steps), policy=args.policy, progress=True)  # fmt: skip
    traj.meta["model_spec"] = args.model
    path = traj.save(args.out)
    print(f"wrote {path}: latent {traj.latent.shape}, x̂0 at {len(traj.x0_steps)} steps")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("sample", help="sample one trajectory; write latents and x̂0 per step (.npz)")
    p.add_argument("--model", required=True, help="random:PRESET[:SEED] (e.g. random:toy)")
    p.add_argument("--low-model", default=None, help="the low-noise expert of a two-expert model")
    p.add_argument("--preset", default="paper", help="sampling preset (paper, official-t2v-a14b, …)")
    p.add_argument("--latent", default="5x8x8", help="latent FxHxW (e.g. 21x60x104 for 480x832x81)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one world per seed")
    p.add_argument("--context", help=".npy text embedding [T, text_dim] or [1|W, T, text_dim]")
    p.add_argument("--negative", help=".npy negative-prompt embedding (default zeros)")
    p.add_argument("--y", help=".npy I2V conditioning [1|W, F, H, W, Cy]")
    p.add_argument("--keep-steps", default=None, help="steps whose x̂0 to keep, e.g. 0-19,45-49 (default all)")
    p.add_argument("--policy", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=_run)
