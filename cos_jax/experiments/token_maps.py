"""`token_maps`: where the block outputs' energy sits, per step and layer — the paper's Fig. 6(a).

Two sweep points, both on the conditional CFG branch (the positive pass) at every step, so both experts of
a two-expert model are covered:

- `norms`, every sample: token L2 norms of the chosen layers' block outputs at every step, reduced in-graph
  by the `token_norm` capture. Kept per sample: the mean token norm per (step, layer), the per-latent-frame
  energy, and the foreground/background ratio of token norm, weighted by how much of each token's pixel
  footprint the task's object mask covers (`Task.object_mask`). The full layers × frames norm maps are kept
  at `show_steps` for the first `detail_per_task` samples of each task.
- `detail`, those first samples: full block outputs at `show_steps`, reduced in-graph to a 3-component PCA
  of the tokens (shown as RGB, with explained variance) and the variance of every channel, so a 480p
  A14B run never moves a full hidden state off the device.

The paper's claim tested beyond its figure: "from about layer 9 activation moves to foreground objects" —
here, the layer from which the foreground/background ratio's interval lies above 1.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from cos_jax.experiments.base import ExperimentError, Point, ReportedIn, check_indices
from cos_jax.probes.plan import Plan, capture_plan
from cos_jax.sampling.loop import keep_x0, run_trajectory


def token_weights(mask: np.ndarray, grid: tuple[int, int, int], pixel_frames) -> np.ndarray:
    """Share of each token's pixel footprint that the object mask covers: [F, h, w] in [0, 1] from a bool
    (T, H, W) mask, a latent token grid (F, h, w) and the pixel frames of each latent frame."""
    f, h, w = grid
    frames = np.stack([mask[pixel_frames(i)].mean(0) for i in range(f)])  # [F, H, W]
    sy, sx = frames.shape[1] // h, frames.shape[2] // w
    return frames[:, : h * sy, : w * sx].reshape(f, h, sy, w, sx).mean(axis=(2, 4))


def fg_bg_ratio(norms: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean token norm on objects over that off them: norms [..., L], weights [L] -> [...]."""
    fg = (norms * weights).sum(-1) / max(weights.sum(), 1e-9)
    bg = (norms * (1 - weights)).sum(-1) / max((1 - weights).sum(), 1e-9)
    return fg / np.maximum(bg, 1e-12)


def _pca(tokens: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """tokens [..., L, D] -> (RGB [..., L, 3] in [0, 1] from the top 3 principal components of each token set,
    their explained variance share [..., 3], the variance of each channel [..., D]).

    The eigendecompositions run one matrix at a time (`lax.map`): XLA:CPU's batched `eigh` splits its batch
    over the intra-op thread pool and blocks on it, which deadlocks when several host devices of a mesh call
    it at once (every pool thread waiting); one matrix a call never waits on the pool."""
    x = tokens.astype(jnp.float32)
    x = x - x.mean(-2, keepdims=True)
    cov = jnp.einsum("...ld,...le->...de", x, x, precision=jax.lax.Precision.HIGHEST) / x.shape[-2]
    values, vectors = jax.lax.map(jnp.linalg.eigh, cov.reshape(-1, *cov.shape[-2:]))
    values, vectors = values.reshape(cov.shape[:-1]), vectors.reshape(cov.shape)
    top, share = vectors[..., ::-1][..., :3], values[..., ::-1][..., :3]
    share = share / jnp.maximum(jnp.trace(cov, axis1=-2, axis2=-1), 1e-20)[..., None]
    largest = jnp.take_along_axis(top, jnp.argmax(jnp.abs(top), axis=-2)[..., None, :], axis=-2)
    top = top * jnp.sign(largest)  # a fixed sign per component: its largest loading is positive
    proj = jnp.einsum("...ld,...dc->...lc", x, top, precision=jax.lax.Precision.HIGHEST)
    low, high = proj.min(-2, keepdims=True), proj.max(-2, keepdims=True)
    return (proj - low) / jnp.maximum(high - low, 1e-12), share, jnp.diagonal(cov, axis1=-2, axis2=-1)


@partial(jax.jit, static_argnames=("config", "policy"))
def _detail_run(experts, cond, noise, plan, key, keep, start, *, config, policy):
    """Full cond-branch block outputs at the captured steps, reduced on device to PCA and channel variance."""
    out = run_trajectory(experts, cond, noise, plan, key, keep, config=config, policy=policy, start=start)
    return _pca(out["captures"][:, :, 0])  # captures [K, Lc, W, L, D]


class TokenMaps(ReportedIn):
    report_module = "cos_jax.experiments.token_maps_report"
    name = "token_maps"
    defaults: ClassVar[dict] = {
        "tasks": ["select_next", "tictactoe", "maze@1", "majority_colour"],
        "layers": [0, 10, 20, 30, 39],  # the paper's tool
        "show_steps": [0, 10, 20, 30, 40, 49],  # steps of the per-step maps, PCA and channels
        "detail_per_task": 1,  # samples per task with maps, PCA and channels
        "capture_dtype": "float32",  # of the full block outputs in the detail point ("bfloat16" at full size)
        "batch": 64,
    }

    def check(self, config: dict, model: dict) -> None:
        if not config["layers"]:
            raise ExperimentError("layers is empty; name the layers to capture, e.g. layers = [0, 4, 7]")
        check_indices("layers", config["layers"], model["layers"], "layer(s)")
        check_indices("show_steps", config["show_steps"], config["steps"], "step(s)")
        if not 1 <= config["detail_per_task"] <= config["per_task"]:
            raise ExperimentError(f"detail_per_task = {config['detail_per_task']} must lie in [1, per_task]")
        if config["capture_dtype"] not in ("float32", "bfloat16"):
            raise ExperimentError(f"capture_dtype = {config['capture_dtype']!r}; choose 'float32' or 'bfloat16'")

    def points(self, config: dict, info: dict) -> list[Point]:
        return [Point("norms", {}), Point("detail", {})]

    def next_points(self, config: dict, records: dict) -> list[Point]:
        return []

    def keep_steps(self, config: dict) -> list[int]:
        return []

    def plan_for(self, session, point: Point, worlds: int) -> Plan:
        cfg, steps, layers = session.config, session.config["steps"], session.model.num_layers
        if point.id == "norms":
            capture = capture_plan(steps, layers, range(steps), cfg["layers"], "token_norm", "cond")
        else:
            capture = capture_plan(steps, layers, cfg["show_steps"], cfg["layers"], "full", "cond",
                                   dtype=cfg["capture_dtype"])  # fmt: skip
        return Plan(capture=capture)

    def detail_samples(self, session) -> list[int]:
        per = session.config["detail_per_task"]
        return [i for e in session.config["tasks"] for i in session.entry_subset(e)[:per]]

    def grid(self, session) -> tuple[int, int, int]:
        f, h, w, _ = session.model.latent_shape
        _, ph, pw = session.model.experts[0].config.patch_size
        return f, h // ph, w // pw

    def run_point(self, session, point: Point) -> dict:
        return self._norms(session, point) if point.id == "norms" else self._detail(session, point)

    def _norms(self, session, point: Point) -> dict:
        from cos_jax.tasks import get_task

        cfg = session.config
        n, steps, lc = session.num_samples, cfg["steps"], len(cfg["layers"])
        grid = self.grid(session)
        detail = self.detail_samples(session)
        show = np.asarray(cfg["show_steps"])
        out = {"mean_norm": np.zeros((n, steps, lc), np.float32), "fg_bg": np.zeros((n, steps, lc), np.float32),
               "frame_energy": np.zeros((n, steps, lc, grid[0]), np.float32),
               "maps": np.zeros((len(detail), len(show), lc, *grid), np.float32)}  # fmt: skip
        for index, real, traj in session.trajectories(lambda w: self.plan_for(session, point, w)):
            norms = np.asarray(traj.captures[:, :, 0], np.float32)  # [S, Lc, W, L]
            for j, i in enumerate(index[:real]):
                per = norms[:, :, j]  # [S, Lc, L]
                sample = session.samples[i]
                weights = token_weights(get_task(sample.task).object_mask(sample), grid, session.model.pixel_frames)
                out["mean_norm"][i] = per.mean(-1)
                out["fg_bg"][i] = fg_bg_ratio(per, weights.reshape(-1))
                out["frame_energy"][i] = per.reshape(steps, lc, grid[0], -1).mean(-1)
                if i in detail:
                    out["maps"][detail.index(i)] = per[show].reshape(len(show), lc, *grid)
        return out | {"detail_samples": np.asarray(detail)}

    def _detail(self, session, point: Point) -> dict:
        cfg = session.config
        detail = self.detail_samples(session)
        grid, lc, k = self.grid(session), len(cfg["layers"]), len(cfg["show_steps"])
        dim = session.model.experts[0].config.dim
        out = {"pca_rgb": np.zeros((len(detail), k, lc, *grid, 3), np.float32),
               "pca_share": np.zeros((len(detail), k, lc, 3), np.float32),
               "channel_var": np.zeros((len(detail), k, lc, dim), np.float32)}  # fmt: skip
        keep = keep_x0(cfg["steps"], [])
        for c, index in enumerate(session.chunks(subset=detail)):
            inputs = session.inputs(c, index)
            plan = self.plan_for(session, point, len(inputs["worlds"]))
            rgb, share, var = session.call(_detail_run, inputs, plan, keep)
            for j, i in enumerate(index[: inputs["real"]]):
                d = detail.index(i)
                out["pca_rgb"][d] = np.asarray(rgb[:, :, j]).reshape(k, lc, *grid, 3)
                out["pca_share"][d] = np.asarray(share[:, :, j])
                out["channel_var"][d] = np.asarray(var[:, :, j])
        return out | {"detail_samples": np.asarray(detail)}
