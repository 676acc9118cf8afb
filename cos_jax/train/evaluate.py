"""Score a toy world on held-out task samples: sample with CFG, decode, and apply the task scorers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cos_jax.pipelines.toy import decode_video, generate, toy_sampling
from cos_jax.wan.toy import ToySpec

EVAL_DIFFICULTY = 2  # the held-out level a bare task name means


def parse_entry(entry: str) -> tuple[str, int]:
    """``"maze"`` -> ("maze", 2); ``"maze@1"`` -> ("maze", 1): a task at a difficulty level."""
    name, _, level = entry.partition("@")
    if level and not level.isdigit():
        raise ValueError(f"bad evaluation entry {entry!r}: expected TASK or TASK@DIFFICULTY, e.g. maze@1")
    return name, int(level) if level else EVAL_DIFFICULTY


def entry_label(entry: str) -> str:
    """The report key of an entry: its task name, with ``@difficulty`` unless at the default level."""
    name, level = parse_entry(entry)
    return name if level == EVAL_DIFFICULTY else f"{name}@{level}"


def sample_label(sample) -> str:
    """The report key of a held-out sample (the `entry_label` of its task and difficulty)."""
    return entry_label(f"{sample.task}@{sample.meta['difficulty']}")


def held_out_samples(entries: Sequence[str], per_task: int, spec: ToySpec, start: int = 0):
    """Test-split samples (parameter hashes never seen in training) of each ``TASK[@DIFFICULTY]`` entry."""
    from cos_jax.tasks import get_task

    return [get_task(name).generate_for_split("test", start + i, level, spec.resolution, spec.frames)
            for name, level in map(parse_entry, entries) for i in range(per_task)]  # fmt: skip


def score_samples(model, spec: ToySpec, samples, steps: int = 50, guidance: float = 5.0, seed: int = 0,
                  chunk: int | None = None):  # fmt: skip
    """(scores, successes) [n] of one sampling run per sample (world i from seed + i), sampled `chunk`
    worlds per call (default: all at once); `model` is a toy (`ToyModel`) or the two-expert toy (`ToyPair`,
    sampled with its expert switch)."""
    from cos_jax.tasks import get_task

    chunk = chunk or len(samples)
    config = toy_sampling(steps, guidance, two_experts=isinstance(model.dit, tuple))
    results = []
    for i in range(0, len(samples), chunk):
        part = samples[i : i + chunk]
        seeds = [seed + i + j for j in range(len(part))]
        traj = generate(model, spec, np.stack([s.first_frame for s in part]), [s.prompt for s in part],
                        seeds=seeds, config=config, keep_steps=[steps - 1])  # fmt: skip
        videos = decode_video(spec, traj.latent)
        results += [get_task(s.task).score(v, s.meta) for s, v in zip(part, videos, strict=True)]
    return np.array([r.score for r in results]), np.array([float(r.success) for r in results])


def add_eval_arguments(parser) -> None:
    """The held-out evaluation options the eval scripts share."""
    parser.add_argument("--per-task", type=int, default=100)
    parser.add_argument("--start", type=int, default=0, help="first test-split index (fresh boards: past those used)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--chunk", type=int, default=400, help="worlds per sampling call")
    parser.add_argument("--out", required=True)


def evaluate(model, spec: ToySpec, samples, steps: int = 50, guidance: float = 5.0, seed: int = 0,
             chunk: int | None = None) -> dict:  # fmt: skip
    """{entry: {"score", "success", "n"}} plus "mean" over entries, for one sampling run per sample."""
    scores, successes = score_samples(model, spec, samples, steps, guidance, seed, chunk)
    rows: dict[str, list] = {}
    for sample, score, success in zip(samples, scores, successes, strict=True):
        rows.setdefault(sample_label(sample), []).append((score, success))
    report = {t: {"score": float(np.mean([r[0] for r in v])), "success": float(np.mean([r[1] for r in v])), "n": len(v)}
              for t, v in rows.items()}  # fmt: skip
    report["mean"] = {k: float(np.mean([report[t][k] for t in rows])) for k in ("score", "success")}
    return report
