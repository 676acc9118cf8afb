"""Results and report of `layer_swap`: own / other / neither answer per swapped layer, with Wilson intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cos_jax.analysis.report import Figure, Section, Table, curves
from cos_jax.analysis.stats import wilson_interval


def _rate(hits: np.ndarray) -> list[float]:
    """[rate, low, high]: Wilson 95 % interval of a boolean array's share (NaNs for an empty one)."""
    hits = np.asarray(hits, bool).ravel()
    if hits.size == 0:
        return [float("nan")] * 3
    return [round(v, 6) for v in wilson_interval(int(hits.sum()), hits.size)]


def _rates(outcome: np.ndarray) -> dict:
    return {name: _rate(outcome == k) for k, name in enumerate(("own", "other", "neither"))}


def summarise(config: dict, info: dict, records: dict) -> dict:
    labels = np.array([s["label"] for s in info["samples"][::2]])
    base = records["none"]["outcome"]
    both_right = (base == 0).all(1)  # pairs whose problems are both solved without a swap
    layers = sorted(r["params"]["layer"] for r in records.values() if r["params"]["layer"] is not None)
    per_layer = {}
    for k in layers:
        out = records[f"layer-{k:02d}"]["outcome"]
        entry = {"all": _rates(out), "solved_pairs": _rates(out[both_right])}
        entry["tasks"] = {t: _rates(out[labels == t]) for t in dict.fromkeys(labels)}
        per_layer[str(k)] = entry
    flips = {k: v["all"]["other"][0] for k, v in per_layer.items()}
    return {
        "pairs": len(labels),
        "directions": 2 * len(labels),
        "solved_pairs": int(both_right.sum()),
        "no_swap": _rates(base) | {"tasks": {t: _rates(base[labels == t]) for t in dict.fromkeys(labels)}},
        "layers": per_layer,
        "peak_layer": int(max(flips, key=flips.get)) if flips else None,
    }


def _fmt(r) -> str:
    return f"{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]"


def report(results: dict, out: Path, records: dict) -> list:
    cfg = results["config"]
    per = results["layers"]
    layers = np.array([int(k) for k in per])
    series = {}
    for name, key in (("all pairs", "all"), ("pairs solved without a swap", "solved_pairs")):
        r = np.array([per[k][key]["other"] for k in per]).T
        series[f"other's answer: {name}"] = (r[0], r[1], r[2])
    own = np.array([per[k]["all"]["own"] for k in per]).T
    series["own answer: all pairs"] = (own[0], own[1], own[2])
    f1 = curves(out / "flip_rate.png", layers, series, "world A swapped with B at one layer: which answer?",
                "swapped layer", "share of worlds", ylim=(-0.02, 1.02))  # fmt: skip
    tasks = list(results["no_swap"]["tasks"])
    by_task = {t: (*np.array([per[k]["tasks"][t]["other"] for k in per]).T,) for t in tasks}
    f2 = curves(out / "flip_rate_tasks.png", layers, by_task, "flip rate (other's answer) per task", "swapped layer",
                "share of worlds", ylim=(-0.02, 1.02))  # fmt: skip
    rows = [[f"layer {k}", _fmt(v["all"]["own"]), _fmt(v["all"]["other"]), _fmt(v["all"]["neither"]),
             _fmt(v["solved_pairs"]["other"])] for k, v in per.items()]  # fmt: skip
    base = results["no_swap"]
    where = "both CFG branches" if cfg["branches"] == "both" else "the conditional branch"
    what = "the layer's own residual update" if cfg["part"] == "update" else "the whole residual stream"
    steps = "step 0" if cfg["swap_steps"] == 1 else f"steps 0–{cfg['swap_steps'] - 1}"
    return [Section(
        "Layer swap between paired problems",
        [f"{results['pairs']} pairs ({results['directions']} worlds, both directions), each pair from one initial "
         f"noise; {what} exchanged at one layer at {steps}, in {where}. Without a swap: own answer "
         f"{_fmt(base['own'])}, the other's {_fmt(base['other'])}, neither {_fmt(base['neither'])}; "
         f"{results['solved_pairs']} pairs have both problems solved. Intervals: Wilson 95 %.",
         f"Highest flip rate at layer {results['peak_layer']}."],
        tables=[Table(["swapped layer", "own answer", "other's answer", "neither", "other's (solved pairs)"], rows)],
        figures=[Figure(f1, caption="share of worlds giving their own / the other problem's answer"),
                 Figure(f2, caption="flip rate per task")],
    )]  # fmt: skip
