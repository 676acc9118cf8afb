"""Results and report of `propagation`: 1 − CKA heatmaps (s_t × s), sensitivity and score-drop curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cos_jax.analysis.report import Figure, Section, Table, curves, heatmap, signed_interval
from cos_jax.analysis.stats import bootstrap_ci, paired_bootstrap_ci


def _r(values) -> list[float]:
    return [round(float(v), 6) for v in values]


def representations(config: dict) -> list[str]:
    return ["latent", "x0", *[f"layer{layer}" for layer in config["layers"]]]


def summarise(config: dict, info: dict, records: dict) -> dict:
    """One entry per (boundary, mode) sweep, keyed "mode" (one boundary) or "mode @ boundary B"."""
    bounds = config["boundaries"] or [config["boundary"]]
    out = {"representations": representations(config), "modes": {}}
    for b in bounds:
        for mode in config["modes"]:
            rows = sorted((r for r in records.values() if r["params"]["mode"] == mode and r["params"]["boundary"] == b),
                          key=lambda r: r["params"]["at"])  # fmt: skip
            key = f"{mode} @ boundary {b:g}" if config["boundaries"] else mode
            out["modes"][key] = {"mode": mode, "boundary": b, **_sweep(config, rows)}
    out["boundary_effect"] = boundary_effect(config, out["modes"])
    out["switch_contrast"] = switch_contrast(config, records, out["modes"])
    return out


def _sweep(config: dict, rows: list[dict]) -> dict:
    steps = config["steps"]
    switch = rows[0]["switch_step"] if rows else None
    entry = {"switch_step": None if switch is None else int(switch), "inject_steps": [r["params"]["at"] for r in rows],
             "heatmap": {}, "sensitivity": {}, "unbiased_sensitivity": {}}  # fmt: skip
    for rep in representations(config):
        dis = np.stack([1.0 - r[f"cka_{rep}"] for r in rows])  # [inject, samples, steps]
        entry["heatmap"][rep] = [_r(row) for row in dis.mean(axis=1)]
        entry["sensitivity"][rep] = [_r(bootstrap_ci(d[:, steps - 1])) for d in dis]
        udis = np.stack([1.0 - r[f"ucka_{rep}"] for r in rows])
        entry["unbiased_sensitivity"][rep] = [_r(bootstrap_ci(d[:, steps - 1])) for d in udis]
        before = [float(np.abs(d[:, : r["params"]["at"]]).max()) if r["params"]["at"] else 0.0
                  for d, r in zip(dis, rows, strict=True)]  # fmt: skip
        entry["before_injection_max"] = max(entry.get("before_injection_max", 0.0), *before)
    entry["success_clean"] = [_r(bootstrap_ci(r["success_clean"])) for r in rows]
    entry["success"] = [_r(bootstrap_ci(r["success"])) for r in rows]
    entry["success_drop"] = [_r(paired_bootstrap_ci(r["success_clean"], r["success"])) for r in rows]
    entry["changed"] = [_r(bootstrap_ci((r["success_clean"] != r["success"]).astype(float))) for r in rows]
    entry["peak"] = {rep: entry["inject_steps"][int(np.argmax([v[0] for v in entry["sensitivity"][rep]]))]
                     for rep in representations(config)}  # fmt: skip
    return entry


def boundary_effect(config: dict, sweeps: dict) -> list[str]:
    """Per mode and representation: does the sensitivity peak move with the expert switch across boundaries?"""
    out = []
    for mode in config["modes"]:
        runs = [v for v in sweeps.values() if v["mode"] == mode and v["switch_step"] is not None]
        if len({v["switch_step"] for v in runs}) < 2:
            continue
        runs = sorted(runs, key=lambda v: v["switch_step"])
        for rep in representations(config):
            peaks = [v["peak"][rep] for v in runs]
            switches = [v["switch_step"] for v in runs]
            moved = all(np.sign(p2 - p1) == np.sign(s2 - s1) != 0
                        for p1, p2, s1, s2 in zip(peaks, peaks[1:], switches, switches[1:], strict=False))  # fmt: skip
            verdict = "moves with the switch: an expert effect" if moved else "does not follow the switch"
            pairs = ", ".join(f"switch {s} → peak {p}" for s, p in zip(switches, peaks, strict=True))
            out.append(f"{mode}, {rep}: {pairs}; the peak {verdict}")
    return out


def switch_contrast(config: dict, records: dict, sweeps: dict) -> list[dict]:
    """Each moved boundary against `boundary` (same samples, same noise, so paired): per injection step, the change
    in success drop and in x̂0's final 1 − CKA when the switch moves. Steps between the two switches are where
    one run's perturbed latent meets the low-noise expert at once and the other's the high-noise one first."""
    by_key = {(r["params"]["mode"], r["params"]["boundary"], r["params"]["at"]): r for r in records.values()}
    out = []
    for mode in config["modes"]:
        runs = {v["boundary"]: v for v in sweeps.values() if v["mode"] == mode and v["switch_step"] is not None}
        ref = runs.get(config["boundary"])
        if ref is None:
            continue
        for b, run in sorted(runs.items()):
            if run["switch_step"] == ref["switch_step"]:
                continue
            rows = []
            for at in sorted(set(run["inject_steps"]) & set(ref["inject_steps"])):
                moved, base = by_key[(mode, b, at)], by_key[(mode, config["boundary"], at)]
                drop = paired_bootstrap_ci(moved["success_clean"] - moved["success"],
                                           base["success_clean"] - base["success"])  # fmt: skip
                x0 = paired_bootstrap_ci(base["cka_x0"][:, -1], moved["cka_x0"][:, -1])  # Δ(1 − CKA)
                rows.append({"at": at, "success_drop": _r(drop), "x0": _r(x0)})
            out.append({"mode": mode, "boundary": b, "reference": config["boundary"], "switch": run["switch_step"],
                        "reference_switch": ref["switch_step"], "rows": rows})  # fmt: skip
    return out


def _contrast_line(c: dict) -> str:
    """Where the switch move changes the outcome (interval excludes 0), and whether it is between the switches."""
    lo, hi = sorted((c["switch"], c["reference_switch"]))
    hits = [r for r in c["rows"] if r["success_drop"][1] > 0 or r["success_drop"][2] < 0]
    head = f"{c['mode']}, switch {c['switch']} against {c['reference_switch']}"
    if not hits:
        return f"{head}: the success drop changes at no injection step (every paired interval includes 0)"
    where = ", ".join(f"s_t = {r['at']} ({signed_interval(r['success_drop'])})" for r in hits)
    inside = sum(lo <= r["at"] < hi for r in hits)
    return (
        f"{head}: the success drop changes at {where}; {inside} of {len(hits)} between the switches "
        f"({lo} ≤ s_t < {hi}), where the experts that meet the perturbation differ"
    )


def report(results: dict, out: Path, records: dict) -> list:
    cfg = results["config"]
    switches = sorted({v["switch_step"] for v in results["modes"].values() if v["switch_step"] is not None})
    where = (f"Expert switch at step(s) {switches} (boundaries {cfg['boundaries'] or [cfg['boundary']]})."
             if switches else "One expert (no switch).")  # fmt: skip
    sections = [Section("Protocol", [
        f"{results['num_samples']} samples ({', '.join(cfg['tasks'])}, {cfg['per_task']} each), {cfg['steps']} "
        f"Euler steps, CFG {cfg['guidance']:g}. Each sample runs clean and perturbed from the same initial noise; "
        f"the perturbation ({', '.join(cfg['modes'])}, α = {cfg['alpha']:g}) hits every latent frame at step s_t. "
        "CKA compares clean and perturbed as tokens × channels at every step: the latent the DiT saw, x̂0, and "
        f"block outputs of layers {cfg['layers']} (conditional branch). "
        + where])]  # fmt: skip
    if results["boundary_effect"]:
        sections.append(Section("Does the peak follow the expert switch?", results["boundary_effect"]))
    for c in results.get("switch_contrast", []):
        rows = [[r["at"], signed_interval(r["success_drop"]), signed_interval(r["x0"])] for r in c["rows"]]
        head = ["s_t", "Δ success drop", "Δ (1 − CKA x0), final step"]
        at = np.asarray([r["at"] for r in c["rows"]])
        path = curves(out / f"{c['mode']}_switch_contrast.png", at,
                      {"Δ success drop": tuple(np.asarray([r["success_drop"] for r in c["rows"]]).T)},
                      f"{c['mode']}: switch at {c['switch']} minus switch at {c['reference_switch']}",
                      "injection step s_t", "paired difference",
                      vlines={f"switch {c['switch']}": c["switch"] - 0.5,
                              f"switch {c['reference_switch']}": c["reference_switch"] - 0.5})  # fmt: skip
        sections.append(Section(
            f"{c['mode']}: switch at step {c['switch']} minus switch at step {c['reference_switch']}, paired",
            [_contrast_line(c), "Same samples and initial noise under both boundaries; 95 % paired bootstrap "
             "intervals."], tables=[Table(head, rows)],
            figures=[Figure(path, caption="change of the success drop when the switch moves, paired")]))  # fmt: skip
    for mode, entry in results["modes"].items():
        inject = entry["inject_steps"]
        switch = entry["switch_step"]
        vlines = {"expert switch": switch - 0.5} if switch is not None else None
        name = mode.replace(" @ boundary ", "_b")
        marks = None
        if switch is not None:  # the boundary before the switch step on both axes (rows: interpolated s_t)
            marks = {"expert switch": (switch - 0.5, float(np.interp(switch - 0.5, inject, range(len(inject)))))}
        figures = []
        for rep in results["representations"]:
            path = heatmap(out / f"{name}_{rep}_heatmap.png", np.asarray(entry["heatmap"][rep]),
                           list(range(cfg["steps"])), inject, f"1 − CKA, {rep}, {mode}", "step s",
                           "injection step s_t", "1 − linear CKA (mean over samples)", marks=marks)  # fmt: skip
            figures.append(Figure(path, caption=f"{rep}: 1 − CKA between clean and perturbed at every step s"))
        series = {rep: tuple(np.asarray(entry["sensitivity"][rep]).T) for rep in results["representations"]}
        path = curves(out / f"{name}_sensitivity.png", np.asarray(inject), series,
                      f"sensitivity ({mode}): 1 − CKA at the final step", "injection step s_t", "1 − CKA",
                      vlines=vlines)  # fmt: skip
        figures.insert(0, Figure(path, caption="sensitivity per representation, 95 % bootstrap intervals"))
        drop = np.asarray(entry["success_drop"]).T
        changed = np.asarray(entry["changed"]).T
        path = curves(out / f"{name}_outcome.png", np.asarray(inject),
                      {"success drop (clean − perturbed)": tuple(drop), "changed outcome rate": tuple(changed)},
                      f"outcome ({mode})", "injection step s_t", "rate", vlines=vlines)  # fmt: skip
        figures.insert(1, Figure(path, caption="drop in success and rate of changed outcomes, same runs"))
        rows = [[s, *[f"{entry['sensitivity'][rep][i][0]:.4f}" for rep in results["representations"]],
                 f"{entry['success_drop'][i][0]:.3f} [{entry['success_drop'][i][1]:.3f}, "
                 f"{entry['success_drop'][i][2]:.3f}]", f"{entry['changed'][i][0]:.3f}"]
                for i, s in enumerate(inject)]  # fmt: skip
        head = ["s_t", *[f"1−CKA {rep}" for rep in results["representations"]], "success drop", "changed"]
        peaks = ", ".join(f"{rep} at s_t = {s}" for rep, s in entry["peak"].items())
        sections.append(Section(
            f"Perturbation by {mode}",
            [f"Sensitivity peaks: {peaks}. Largest |1 − CKA| before the injection step (must be 0 by causality): "
             f"{entry['before_injection_max']:.2e}."],
            tables=[Table(head, rows)], figures=figures))  # fmt: skip
    return sections
