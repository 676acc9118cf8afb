"""The toy-world training driver: data-parallel steps, logging, evaluation, checkpoints, curves."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from cos_jax.parallel import make_mesh
from cos_jax.train.checkpoint import load_weights, restore_state, save_state, save_weights, total_steps
from cos_jax.train.flow import TrainConfig, init_state, split_prompt_table, train_step
from cos_jax.wan.toy import ToySpec, init_toy


def train_flops_per_sample(spec: ToySpec) -> float:
    """Forward + backward ≈ 3 × forward FLOPs of the DiT (text encoder excluded)."""
    return 3.0 * spec.dit.forward_flops(spec.dit.tokens(*spec.latent_shape[:3]))


def train(
    spec: ToySpec,
    cfg: TrainConfig,
    data: dict[str, np.ndarray],
    out: str | Path,
    *,
    evaluate_fn=None,
    eval_every: int = 0,
    checkpoint_every: int = 1000,
    time_budget_s: float | None = None,
    init_weights: str | Path | None = None,
    log_every: int = 50,
) -> dict:
    """Train until `cfg.steps` or the time budget; resumes from `out/state` if present. Returns a summary."""
    out = Path(out)
    model = init_toy(spec, cfg.seed)
    prior_steps = total_steps(init_weights) if init_weights else 0  # steps behind the starting weights
    if init_weights:
        with np.load(init_weights) as f:
            tree = "params" if any(k.startswith("params/") for k in f.files) else "ema"
        load_weights(init_weights, tree, model)
    graphdef, state = init_state(model, cfg)

    def save(state) -> None:
        save_weights(out / "weights.npz", {"ema": state.ema, "params": state.params},
                     {"step": int(state.step), "total_steps": prior_steps + int(state.step), "spec": repr(spec),
                      "train": repr(cfg)})  # fmt: skip

    evaluate = None if evaluate_fn is None else lambda state: evaluate_fn(nnx.merge(graphdef, state.ema))
    mesh, state, inputs = data_parallel(state, data)
    return run_steps(partial(train_step, graphdef, spec, cfg), state, inputs, out, mesh=mesh,
                     flops_per_sample=train_flops_per_sample(spec), cfg=cfg, save=save, evaluate=evaluate,
                     eval_every=eval_every, checkpoint_every=checkpoint_every, time_budget_s=time_budget_s,
                     log_every=log_every)  # fmt: skip


def data_parallel(state, data: dict[str, np.ndarray]):
    """(mesh, state, (samples, prompt table)) for the toy trainers: every device on `data`, the state and a
    task_arrays dict replicated (committed like the step's outputs: one compilation)."""
    mesh = make_mesh(f"data={jax.device_count()}")
    replicated = NamedSharding(mesh, PartitionSpec())
    samples, prompts = split_prompt_table({k: np.asarray(v) for k, v in data.items() if k != "task"})
    return mesh, jax.device_put(state, replicated), jax.device_put((samples, prompts), replicated)


def run_steps(
    step,
    state,
    inputs: tuple,
    out: str | Path,
    *,
    mesh,
    flops_per_sample: float,
    cfg: TrainConfig,
    save,
    evaluate=None,
    eval_every: int = 0,
    checkpoint_every: int = 1000,
    time_budget_s: float | None = None,
    log_every: int = 50,
) -> dict:
    """The loop shared by the trainers: `step(state, *inputs) -> (state, metrics)` under `mesh` until
    `cfg.steps` or the time budget, resuming from `out/state` (restored where `state` is placed); logs to
    `out/log.jsonl`, checkpoints the state and calls `save(state)` (the weights people use) every
    `checkpoint_every` steps and at the end; writes and returns `out/summary.json`'s throughput summary
    (`flops_per_sample`: forward + backward model FLOPs of one sample)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_dir = out / "state"
    if state_dir.exists():
        state = restore_state(state_dir, state)
        print(f"resumed from {state_dir} at step {int(state.step)}")
    step_fn = jax.jit(step, donate_argnums=0)
    start_step, started = int(state.step), time.perf_counter()
    timed_from, timed_steps = None, 0
    bar = tqdm(total=cfg.steps, initial=start_step, desc="training", unit="step")
    with jax.set_mesh(mesh), (out / "log.jsonl").open("a") as log:
        while int(state.step) < cfg.steps:
            state, metrics = step_fn(state, *inputs)
            step_index = int(state.step)
            bar.update(1)
            if step_index == start_step + 5:  # time after compilation and warm-up
                jax.block_until_ready(state)
                timed_from, timed_steps = time.perf_counter(), 0
            timed_steps += 1
            if step_index % log_every == 0:
                row = {"step": step_index, "loss": float(metrics["loss"]), "grad_norm": float(metrics["grad_norm"]),
                       "elapsed_s": round(time.perf_counter() - started, 1)}  # fmt: skip
                bar.set_postfix(loss=f"{row['loss']:.4f}")
                log.write(json.dumps(row) + "\n")
                log.flush()
            if evaluate is not None and eval_every and step_index % eval_every == 0:
                log.write(json.dumps({"step": step_index, "eval": evaluate(state)}) + "\n")
                log.flush()
            out_of_time = time_budget_s is not None and time.perf_counter() - started > time_budget_s
            if step_index % checkpoint_every == 0 or out_of_time or step_index == cfg.steps:
                save_state(state_dir, state)
                save(state)
            if out_of_time:
                print(f"time budget reached at step {step_index}; state saved")
                break
    bar.close()
    jax.block_until_ready(state)
    seconds = time.perf_counter() - (timed_from or started)
    samples_per_s = timed_steps * cfg.batch / seconds if timed_from else float("nan")
    summary = {
        "steps": int(state.step),
        "device": jax.devices()[0].device_kind,
        "devices": jax.device_count(),
        "samples_per_s": round(samples_per_s, 1),
        "train_tflops_per_s": round(samples_per_s * flops_per_sample / 1e12, 2),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def plot_curves(log_path: str | Path, png_path: str | Path) -> Path:
    """Loss and held-out success per task against training steps of one run's log.jsonl, as a PNG."""
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    return plot_rows(rows, png_path)


def plot_rows(rows: list[dict], png_path: str | Path, boundaries: Sequence[tuple[int, str]] = ()) -> Path:
    """Plot log rows ({"step", "loss"} and {"step", "eval"}); ``boundaries`` mark where runs begin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval"]) for r in rows if "eval" in r]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    if losses:
        axes[0].plot(*zip(*losses, strict=True), lw=0.8)
    axes[0].set(xlabel="step", ylabel="flow-matching loss", yscale="log", title="training loss")
    tasks = sorted({t for _, e in evals for t in e if t != "mean"})
    for t in tasks:
        points = [(s, e[t]["success"]) for s, e in evals if t in e]
        axes[1].plot(*zip(*points, strict=True), marker="o", ms=3, label=t)
    axes[1].set(xlabel="step", ylabel="success rate (held-out)", ylim=(-0.02, 1.02), title="held-out success")
    for ax in axes:
        for step, label in boundaries:
            ax.axvline(step, color="grey", lw=0.6, ls="--")
            ax.annotate(label, (step, 1), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                        va="top", ha="right", color="grey")  # fmt: skip
    if tasks:
        axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return Path(png_path)
