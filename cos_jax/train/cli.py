"""`cos-jax train-lora`: one expert's LoRA of a Wan2.2 I2V pipeline folder, trained on VBVR sample folders."""

from __future__ import annotations

import json

from cos_jax.errors import UsageError


def parse_sigma(text: str | None) -> tuple[float, float] | None:
    """`LO,HI` → (lo, hi); anything else is a UsageError showing the form."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--sigma {text!r}: give LO,HI, e.g. 0.9,1 (high noise) or 0,0.9 (low noise)") from None
    return lo, hi


def _train_lora(args) -> int:
    import jax.numpy as jnp

    from cos_jax.train.flow import TrainConfig
    from cos_jax.train.lora import LoraTrainConfig
    from cos_jax.train.pipeline_lora import train_pipeline_lora
    from cos_jax.wan.lora import LoraConfig

    train = TrainConfig(batch=args.batch, steps=args.steps, lr=args.lr, warmup=args.warmup, weight_decay=0.0,
                        policy=args.policy, remat=args.remat, seed=args.seed)  # fmt: skip
    cfg = LoraTrainConfig(train, LoraConfig(rank=args.rank, alpha=args.alpha), anneal=args.anneal)
    summary = train_pipeline_lora(
        args.pipeline, args.samples, args.out, expert=args.expert, cfg=cfg, sigma_range=parse_sigma(args.sigma),
        frames=args.frames, mesh=args.mesh, init=args.init,
        param_dtype=jnp.bfloat16 if args.param_dtype == "bf16" else jnp.float32, time_budget_s=args.time_budget,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every,
    )  # fmt: skip
    print(json.dumps(summary))
    return 0


EXPERTS = ("high", "low", "single")


def add_commands(sub) -> None:
    p = sub.add_parser(
        "train-lora",
        help="train one expert's LoRA of a Wan2.2 I2V folder on VBVR sample folders (resumable)",
        description="Encodes the sample folders (first_frame.png, prompt.txt, ground_truth.mp4) once through the "
        "folder's VAE and umT5, then trains a LoRA on q, k, v, o of both attentions and ffn.0/ffn.2 of every "
        "block with the base frozen, on the expert's σ range; writes OUT/lora.safetensors (DiffSynth naming, "
        "for cos-jax convert --lora-high/--lora-low). Rerun the same command to resume.",
    )
    p.add_argument("pipeline", help="a Wan2.2 I2V folder (diffusers layout or cos-jax convert output)")
    p.add_argument("samples", help="a folder of VBVR sample folders (any depth)")
    p.add_argument("--out", required=True, help="run folder: latents cache, state, log, lora.safetensors")
    p.add_argument(
        "--expert", required=True, choices=EXPERTS, help="high/low of I2V-A14B, single of a one-expert model"
    )
    p.add_argument("--sigma", help="σ range LO,HI (default: the expert's side of the folder's boundary)")
    p.add_argument("--rank", type=int, default=32, help="LoRA rank (VBVR: 32)")
    p.add_argument("--alpha", type=float, default=None, help="LoRA α (default: the rank, i.e. scale 1)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument(
        "--anneal", action="store_true", help="cosine-decay the rate to lr/10 at --steps (default: constant)"
    )
    p.add_argument("--frames", type=int, default=None, help="frames per video, 4n+1 (default: all)")
    p.add_argument("--mesh", default="", help="device mesh, e.g. fsdp=8 or data=2,fsdp=4 (default: all on fsdp)")
    p.add_argument("--init", default=None, help="warm-start from this LoRA file (same rank)")
    p.add_argument("--policy", default="bf16", choices=["bf16", "fp32"], help="compute precision")
    p.add_argument("--param-dtype", default="bf16", choices=["bf16", "fp32"], help="dtype of the frozen base")
    p.add_argument("--remat", default="full", help="per-block rematerialisation: none, dots or full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-budget", type=float, default=None, help="seconds; save and stop after")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=10)
    p.set_defaults(func=_train_lora)
