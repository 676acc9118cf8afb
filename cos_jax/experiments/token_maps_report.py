"""Results and report of `token_maps`: token-norm maps, energy per layer and frame, PCA, channels, and the
foreground/background ratio behind the paper's "from about layer 9 activation moves to objects"."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cos_jax.analysis.figures import save_panel_grid
from cos_jax.analysis.report import Figure, Section, Table, curves
from cos_jax.analysis.stats import bootstrap_ci

TOP_CHANNELS = 8  # channels listed per (step, layer)


def _r(values) -> list:
    return np.round(np.asarray(values, np.float64), 6).tolist()


def _ci(values: np.ndarray) -> list:
    """[estimate, low, high] (each possibly an array) of the mean over the first axis."""
    return [_r(v) for v in bootstrap_ci(values)]


def foreground_layer(layers: list[int], low: list[float]) -> int | None:
    """The first layer from which every later layer's interval lies above 1 (None if the last does not)."""
    first = None
    for layer, lo in zip(layers, low, strict=True):
        first = (first if first is not None else layer) if lo > 1 else None
    return first


def summarise(config: dict, info: dict, records: dict) -> dict:
    norms, detail = records["norms"], records["detail"]
    labels = [s["label"] for s in info["samples"]]
    show = config["show_steps"]
    fg = norms["fg_bg"]  # [n, S, Lc]
    over_steps = _ci(fg.mean(1))
    tasks = {}
    for label in dict.fromkeys(labels):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        tasks[label] = {"n": len(idx), "fg_bg": _ci(fg[idx].mean(1))}
    var = detail["channel_var"].mean(0)  # [K, Lc, D], mean over the detail samples
    share = var / var.sum(-1, keepdims=True)
    top = np.argsort(-share, axis=-1)[..., :TOP_CHANNELS]
    return {
        "layers": config["layers"],
        "switch_step": info.get("switch_step"),
        "mean_norm": _ci(norms["mean_norm"]),  # [S, Lc] each
        "frame_energy": _r(norms["frame_energy"].mean(0)),  # [S, Lc, F]
        "fg_bg_over_steps": over_steps,  # [Lc] each
        "fg_bg_at_show_steps": _ci(fg[:, show]),  # [K, Lc] each
        "foreground_from_layer": foreground_layer(config["layers"], over_steps[1]),
        "tasks": tasks,
        "detail_samples": [labels[i] for i in detail["detail_samples"]],
        "pca_share": _r(detail["pca_share"]),  # [m, K, Lc, 3]
        "top_channels": top.tolist(),  # [K, Lc, TOP_CHANNELS]
        "top_channel_share": _r(np.take_along_axis(share, top, -1)),
    }


def _fmt(est, lo, hi) -> str:
    return f"{est:.3f} [{lo:.3f}, {hi:.3f}]"


def report(results: dict, out: Path, records: dict) -> list:
    cfg = results["config"]
    layers, show = cfg["layers"], cfg["show_steps"]
    steps = np.arange(cfg["steps"])
    switch = results["switch_step"]
    vlines = {f"expert switch (step {switch})": switch - 0.5} if switch is not None else None
    est, lo, hi = (np.asarray(a) for a in results["mean_norm"])
    by_layer = {f"layer {lay}": (est[:, j], lo[:, j], hi[:, j]) for j, lay in enumerate(layers)}
    f1 = curves(out / "mean_norm.png", steps, by_layer, "mean token norm of the block output (conditional pass)",
                "denoising step", "mean L2 norm", vlines=vlines)  # fmt: skip
    f2 = curves(out / "norm_by_layer.png", np.asarray(layers), {f"step {s}": (est[s], lo[s], hi[s]) for s in show},
                "mean token norm per layer at the shown steps", "layer", "mean L2 norm")  # fmt: skip
    energy = np.asarray(results["frame_energy"])  # [S, Lc, F]
    f3 = save_panel_grid(out / "step_frame_energy.png", [[energy[:, j, :] for j in range(len(layers))]],
                         ["step ↓ × frame →"], [f"layer {lay}" for lay in layers],
                         "mean token norm per denoising step (rows) and latent frame (columns)",
                         shared_scale=False)  # fmt: skip
    f4 = save_panel_grid(out / "frame_energy.png", [[energy[s].T for s in show]], ["frame ↓ × layer →"],
                         [f"step {s}" for s in show], "per-frame energy: latent frame (rows) × layer (columns)",
                         shared_scale=False)  # fmt: skip
    fe, flo, fhi = (np.asarray(a) for a in results["fg_bg_over_steps"])
    se, slo, shi = (np.asarray(a) for a in results["fg_bg_at_show_steps"])
    series = {"mean over steps": (fe, flo, fhi)} | {f"step {s}": (se[k], slo[k], shi[k]) for k, s in enumerate(show)}
    f5 = curves(out / "fg_bg.png", np.asarray(layers), series,
                "token norm on objects / off objects (1 = no preference)", "layer", "ratio")  # fmt: skip
    first = results["foreground_from_layer"]
    deviation = float(np.abs(fe - 1).max())
    verdict = (f"The ratio's 95 % interval lies above 1 from layer {first} on (mean over steps)" if first is not None
               else "No layer from which the ratio's interval stays above 1 (mean over steps)")  # fmt: skip
    verdict += f"; the largest distance of a layer's ratio from 1 is {deviation:.3f} (mean over steps)."
    rows = [[f"layer {lay}", _fmt(fe[j], flo[j], fhi[j]), *[_fmt(se[k, j], slo[k, j], shi[k, j])
            for k in range(len(show))]] for j, lay in enumerate(layers)]  # fmt: skip
    task_rows = [[t, v["n"], *[f"{e:.3f} [{a:.3f}, {b:.3f}]" for e, a, b in zip(*v["fg_bg"], strict=True)]]
                 for t, v in results["tasks"].items()]  # fmt: skip
    sections = [
        Section("Energy per layer and step",
                ["Token L2 norms of the block outputs of the conditional (positive) CFG pass, at every denoising step "
                 "(both experts on two-expert models), reduced in-graph by the token_norm capture. Bands: bootstrap "
                 f"95 % over {results['num_samples']} samples."],
                figures=[Figure(f1, caption="mean token norm per layer against step"),
                         Figure(f2, caption="mean token norm against layer at the shown steps"),
                         Figure(f3, caption="step × frame energy per layer"),
                         Figure(f4, caption="per-frame energy at the shown steps")]),
        Section("Does activation move to the objects?",
                ["Per sample, the mean token norm on the objects over that off them: each token weighted by the "
                 "share of its pixel footprint (over the frames of its latent frame) that the task's object mask "
                 "covers (non-background pixels of the ground-truth video). The paper reports activation moving to "
                 "foreground objects from about layer 9 of 40. " + verdict],
                tables=[Table(["layer", "mean over steps", *[f"step {s}" for s in show]], rows,
                              caption="foreground / background token-norm ratio, 95 % bootstrap intervals"),
                        Table(["task", "n", *[f"layer {lay}" for lay in layers]], task_rows,
                              caption="ratio per task, mean over steps")],
                figures=[Figure(f5, caption="foreground/background ratio against layer")]),
    ]  # fmt: skip
    sections.append(_detail_section(results, out, records))
    return sections


def _detail_section(results: dict, out: Path, records: dict) -> Section:
    cfg = results["config"]
    layers, show = cfg["layers"], cfg["show_steps"]
    maps, rgb = records["norms"]["maps"], records["detail"]["pca_rgb"]  # [m, K, Lc, F, h, w], [.., 3]
    share = np.asarray(results["pca_share"])
    figures = []
    for d, label in enumerate(results["detail_samples"]):
        for k, step in enumerate(show):
            frames = maps.shape[3]
            panels = [[*maps[d, k, j], *rgb[d, k, j]] for j in range(len(layers))]
            row_labels = [f"L{lay} PCA {100 * share[d, k, j].sum():.0f}%" for j, lay in enumerate(layers)]
            cols = [f"norm f{f}" for f in range(frames)] + [f"PCA f{f}" for f in range(frames)]
            name = f"maps_{d:02d}_{label.replace('@', '-')}_s{step:02d}.png"
            title = f"{label}, step {step}: token norm and PCA → RGB (layers × latent frames)"
            path = save_panel_grid(out / name, panels, row_labels, cols, title)
            caption = f"{label}, step {step}; row label: variance the 3 components explain"
            figures.append(Figure(path, caption=caption))
    top, top_share = results["top_channels"], np.asarray(results["top_channel_share"])

    def channels(k: int, j: int) -> str:
        return ", ".join(f"{c} ({100 * top_share[k, j, i]:.1f}%)" for i, c in enumerate(top[k][j]))

    rows = [[f"step {s}", f"layer {lay}", channels(k, j)] for k, s in enumerate(show) for j, lay in enumerate(layers)]
    return Section(
        "Maps, PCA and channels per step",
        ["For the first sample(s) of each task: token-norm maps (one colour scale per layer) and a 3-component PCA "
         "of the tokens of all frames shown as RGB, computed on device from the full block outputs."],
        tables=[Table(["step", "layer", f"top {TOP_CHANNELS} channels by variance (share of total)"], rows,
                      caption="highest-variance channels, variance averaged over the detail samples")],
        figures=figures,
    )  # fmt: skip
