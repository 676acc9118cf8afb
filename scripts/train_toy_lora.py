"""Train one expert LoRA of the two-expert toy (`toy-a14b`) from the shipped toy world (GPU; resumable).

The VBVR recipe scaled to the toy: a LoRA on q, k, v, o of both attentions, ffn.0 and ffn.2 of every
block, the base frozen, the flow-matching loss on the expert's σ range (high noise: σ ≥ 0.875, the
paper sampler's switch at t = 875; low noise: below), AdamW with a linear warm-up, 10 % prompt dropout.

    python scripts/train_toy_lora.py --out runs/toy_a14b/high --sigma 0.875,1 --rank 16 --steps 1200 \
        --batch 1024 --data-cache runs/toy_a14b/data.npz
    python scripts/train_toy_lora.py --out runs/toy_a14b/low --sigma 0,0.875 --rank 16 --steps 1200 \
        --batch 1024 --data-cache runs/toy_a14b/data.npz

Writes OUT/lora.safetensors (DiffSynth naming), OUT/log.jsonl, OUT/summary.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cos_jax.arrays_io import atomic_write
from cos_jax.train.flow import TrainConfig
from cos_jax.train.lora import LoraTrainConfig, train_lora
from cos_jax.wan.lora import LoraConfig
from cos_jax.wan.toy import ToySpec

# The shipped toy's last data mix (docs/toy_world.md, run 5) with maze_two added.
COUNTS = ("maze=36000,maze_two=16000,tictactoe_two=10000,analogy=10000,permanence=10000,clock=10000,bounce=6000,"
          "select_next=6000,tictactoe=6000,majority_colour=6000")  # fmt: skip
SHIPPED = Path(__file__).resolve().parents[1] / "cos_jax" / "assets" / "toy" / "toy_ema.npz"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--sigma", required=True, help="σ range LO,HI of the expert (high 0.875,1; low 0,0.875)")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=None, help="LoRA α (default: the rank, i.e. scale 1)")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument(
        "--anneal", action="store_true", help="cosine-decay the rate to lr/10 at --steps (default: constant)"
    )
    p.add_argument("--remat", default="none")
    p.add_argument("--time-budget", type=float, default=None, help="seconds; save and stop after")
    p.add_argument("--counts", default=COUNTS, help="samples per task, e.g. maze=16000,maze_two=8000")
    p.add_argument("--difficulties", default="1,2", help="difficulties cycled over the samples")
    p.add_argument("--base", default=str(SHIPPED), help="toy weights .npz the LoRA adapts (its EMA)")
    p.add_argument("--init", default=None, help="warm-start from this LoRA file (same rank), e.g. to train on")
    p.add_argument("--seed", type=int, default=0, help="batch and noise draws (use another for a warm start)")
    p.add_argument("--data-cache", default=None, help=".npz to reuse generated data across runs")
    p.add_argument("--prepare-data", action="store_true", help="only generate the data into --data-cache")
    args = p.parse_args()

    spec = ToySpec()
    counts = {k: int(v) for k, v in (item.split("=") for item in args.counts.split(","))}
    cache = Path(args.data_cache) if args.data_cache else None
    if cache is not None and cache.exists():
        with np.load(cache) as f:
            data = {k: f[k] for k in f.files}
    else:
        from cos_jax.train.data import task_arrays

        difficulties = tuple(int(d) for d in args.difficulties.split(","))
        data = task_arrays(list(counts), counts, spec.resolution, spec.frames, spec.dit.text_len,
                           difficulties=difficulties)  # fmt: skip
        if cache is not None:
            atomic_write(cache, lambda tmp: np.savez(tmp, **data))
    print(f"training data: {len(data['video'])} samples of {list(counts)}")
    if args.prepare_data:
        return
    cfg = LoraTrainConfig(
        TrainConfig(
            batch=args.batch,
            steps=args.steps,
            lr=args.lr,
            warmup=args.warmup,
            weight_decay=0.0,
            remat=args.remat,
            seed=args.seed,
        ),
        LoraConfig(rank=args.rank, alpha=args.alpha),
        tuple(float(v) for v in args.sigma.split(",")),
        anneal=args.anneal,
    )
    summary = train_lora(
        spec, cfg, data, args.out, base_weights=args.base, time_budget_s=args.time_budget, init=args.init
    )
    print(summary)


if __name__ == "__main__":
    main()
