"""`layer_swap`: which layer carries the decision — the paper's Fig. 6(b).

Paired problems share the prompt and differ in the decisive element (`Task.pair`: select_next under a
sequence one size up, a maze with another goal, tic-tac-toe with another winning cell), so their right
answers differ. Both problems of a pair run as two worlds from the same initial noise; at layer k of the
steps [0, `swap_steps`) the two worlds exchange (both CFG branches, or the conditional one only):

- `part = "update"` (default): layer k's own residual update, h_k − h_{k−1}. Each world keeps the stream it
  brought to the layer and receives the other world's contribution of that one layer, which is how we read
  the paper's "replace only layer k's representation ... keep U^(l≠k) = U^(l)_ori".
- `part = "stream"`: the whole residual stream after layer k. At step 0 both worlds share x, t and the
  prompt, so everything after layer k is computed from the stream alone: world A's step-0 output becomes
  B's exactly, for every k (tested). A stream swap at step 0 cannot tell layers apart; it measures how much
  of the answer step 0 decides.

Each world's final video is read by the task scorer: its own answer, the other problem's answer
(`Task.cross_meta`), or neither. The flip rate (the other's answer) per layer, with Wilson intervals, says
where the decision lives.

The swap is a `Mix` plan whose layer mask is data, so the whole sweep (and the no-swap point, an all-zero
mask) compiles once.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cos_jax.experiments.base import ExperimentError, Point, ReportedIn, check_indices
from cos_jax.probes.plan import Plan, mix_plan, swap_matrix

OUTCOMES = ("own", "other", "neither")


class LayerSwap(ReportedIn):
    report_module = "cos_jax.experiments.layer_swap_report"
    name = "layer_swap"
    paired = True
    defaults: ClassVar[dict] = {
        "tasks": ["select_next", "tictactoe", "maze@1"],
        "layers": [],  # layers to swap at, one sweep point each; [] = every layer
        "swap_steps": 1,  # swap at steps [0, swap_steps)
        "branches": "both",  # CFG branches swapped: "both" or "cond"
        "part": "update",  # what is exchanged: the layer's own update, or the whole residual "stream"
        "batch": 64,
    }

    def check(self, config: dict, model: dict) -> None:
        from cos_jax.experiments.base import task_entries
        from cos_jax.tasks import get_task

        for label, name, _ in task_entries(config):
            if not get_task(name).has_pairs:
                raise ExperimentError(
                    f"tasks: {label} has no paired problems (Task.pair); layer_swap runs on select_next, "
                    "tictactoe and maze"
                )
        check_indices("layers", config["layers"], model["layers"], "layer(s)")
        if not 1 <= config["swap_steps"] <= config["steps"]:
            raise ExperimentError(f"swap_steps = {config['swap_steps']} must lie in [1, steps = {config['steps']}]")
        if config["branches"] not in ("both", "cond"):
            raise ExperimentError(f"branches = {config['branches']!r}; choose 'both' or 'cond'")
        if config["part"] not in ("update", "stream"):
            raise ExperimentError(f"part = {config['part']!r}; choose 'update' (the layer's own update) or 'stream'")
        if config["batch"] < 2:
            raise ExperimentError("batch = 1: a swap needs both problems of a pair in one call (batch >= 2)")

    def make_samples(self, config: dict, model) -> tuple[list, list[str], list[dict]]:
        """Problems A and B of every pair, interleaved: samples 2p and 2p + 1 are pair p."""
        from cos_jax.experiments.base import task_entries
        from cos_jax.tasks import get_task

        samples, labels, ids = [], [], []
        for label, name, level in task_entries(config):
            task = get_task(name)
            for i in range(config["per_task"]):
                try:
                    pair = task.pair_for_split(config["split"], config["start"] + i, level, model.resolution,
                                               model.frames)  # fmt: skip
                except RuntimeError as err:
                    raise ExperimentError(f"tasks: {label}: {err}; use another difficulty or task") from None
                p = len(samples) // 2
                for role, sample in zip("AB", pair, strict=True):
                    samples.append(sample)
                    labels.append(label)
                    ids.append({"index": config["start"] + i, "pair": p, "role": role, "seed": config["seed"] + p})
        return samples, labels, ids

    def layers(self, config: dict, num_layers: int) -> list[int]:
        return config["layers"] or list(range(num_layers))

    def points(self, config: dict, info: dict) -> list[Point]:
        layers = self.layers(config, info["model"]["layers"])
        return [Point("none", {"layer": None})] + [Point(f"layer-{k:02d}", {"layer": k}) for k in layers]

    def next_points(self, config: dict, records: dict) -> list[Point]:
        return []

    def keep_steps(self, config: dict) -> list[int]:
        return []

    def plan_for(self, session, point: Point, worlds: int) -> Plan:
        half, cfg = worlds // 2, session.config
        layer = point.params["layer"]
        matrix = swap_matrix(worlds, [(i, half + i) for i in range(half)])
        mix = mix_plan(matrix, cfg["steps"], session.model.num_layers, steps=list(range(cfg["swap_steps"])),
                       layers=[] if layer is None else [layer], branches=cfg["branches"], part=cfg["part"])  # fmt: skip
        return Plan(mix=mix)

    def run_point(self, session, point: Point) -> dict:
        from cos_jax.experiments.session import real_count
        from cos_jax.tasks import get_task

        pairs = session.num_samples // 2
        outcome = np.zeros((pairs, 2), np.int8)  # [pair, A|B]: 0 own answer, 1 the other's, 2 neither
        score = np.zeros((pairs, 2), np.float32)
        for c, chunk in enumerate(session.chunks(pair=True, subset=np.arange(pairs))):
            worlds = np.concatenate([2 * chunk, 2 * chunk + 1])  # [A of the chunk | B of the chunk]
            plan = self.plan_for(session, point, len(worlds))
            traj = session.run(worlds, np.concatenate([chunk, chunk]), plan, session.plan_seed(c))
            real = real_count(chunk)
            videos = session.model.decode(traj.latent)
            for j, p in enumerate(chunk[:real]):
                for role, (w, other) in enumerate(((2 * p, 2 * p + 1), (2 * p + 1, 2 * p))):
                    sample, partner = session.samples[w], session.samples[other]
                    task = get_task(sample.task)
                    video = videos[j + role * len(chunk)]
                    own = task.score(video, sample.meta)
                    if own.success:
                        outcome[p, role] = 0
                    else:  # its own answer takes precedence; only then is the other's read
                        flipped = task.score(video, task.cross_meta(sample.meta, partner.meta))
                        outcome[p, role] = 1 if flipped.success else 2
                    score[p, role] = own.score
        return {"outcome": outcome, "score": score}
