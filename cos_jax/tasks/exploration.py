"""Exploration diagnostics over a sequence of intermediate predictions (e.g. x̂₀ at each denoising step).

For a multiple-choice or path task the same palette decoder that scores the answer gives one activation
per candidate; over S predictions that is an (S, K) array, summarised as in vbvr.md §4.3: breadth
(candidates above τ), argmax switches, entropy of the normalised activations, the commit step (from
which the final choice leads), the prune step (from which at most one candidate stays live) and whether
the committed answer is correct.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from cos_jax.tasks.base import Task, prepare_frames

TAU = 0.15


def diagnostics(activations: np.ndarray, correct: Collection[int], tau: float = TAU) -> dict:
    """Summarise an (S, K) activation array; ``correct`` holds the indices of the right candidates."""
    a = np.clip(np.asarray(activations, dtype=np.float64), 0.0, None)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"activations must have shape (steps, candidates), got {a.shape}")
    breadth = (a >= tau).sum(1)
    top = a.argmax(1)
    live = a.max(1) >= tau
    choices = top[live]
    switches = int((choices[1:] != choices[:-1]).sum()) if choices.size else 0
    total = a.sum(1, keepdims=True)
    p = np.divide(a, total, out=np.zeros_like(a), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -(np.where(p > 0, p * np.log(p), 0.0)).sum(1) / np.log(max(a.shape[1], 2))
    final = int(top[-1]) if live[-1] else -1
    commit = None
    if final >= 0:
        agree = live & (top == final)
        commit = int(len(agree) - np.argmin(agree[::-1])) if not agree.all() else 0
    wide = np.flatnonzero(breadth > 1)
    prune = int(wide[-1]) + 1 if wide.size else 0  # from here on at most one candidate stays live
    concentration = float(a[-1].max() / a[-1].sum()) if a[-1].sum() > 0 else 0.0
    return {
        "breadth": breadth.tolist(),
        "max_breadth": int(breadth.max()),
        "switches": switches,
        "entropy": [round(float(e), 6) + 0.0 for e in entropy],
        "commit_step": commit,
        "prune_step": prune,
        "final_choice": final,
        "committed_correct": bool(final in correct),
        "final_concentration": round(concentration, 6),
    }


def explore(task: Task, predictions: Sequence[np.ndarray], meta: dict, tau: float = TAU, soft: bool = True) -> dict:
    """Diagnostics for a sequence of predicted videos (or single final frames) of one sample.

    Predictions are uint8 RGB, or floats in [0, 1]; map a model's [-1, 1] output to [0, 1] first.
    Activations are soft by default (`Task.candidate_activations`): an x̂0 is a posterior mean, so
    candidates it holds at once appear blended, which the palette decoding of the scorers reads as nothing.
    """
    problem = task.render(meta)[0] if soft else None  # the frame soft activations are measured from
    acts = []
    for pred in predictions:
        v = np.asarray(pred)
        v = v[None] if v.ndim == 3 else v
        v = prepare_frames(v, meta["resolution"], v.shape[0])
        acts.append(task.candidate_activations(v, meta, problem))
    out = diagnostics(np.stack(acts), task.correct_candidates(meta), tau)
    out["activations"] = np.round(np.stack(acts), 6).tolist()
    return out
