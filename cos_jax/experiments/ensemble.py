"""`ensemble`: the paper's training-free multi-seed ensemble, in its three reconstructions (reference/paper.md
§4.8), against single seeds, the best-of-W oracle and a majority vote on the same seeds.

Every problem runs as W worlds (seeds seed + W·p + w, the same in every point, so points are paired):

- `single`: no merge — the baselines: the mean single-seed success, best of W, and the majority vote (the
  video whose answer most seeds give; answers read as the leading candidate of multiple-choice tasks).
- `hidden` (recipe 1): the mean over a problem's W worlds of the block outputs (the residual stream) at
  layers [a, b) for steps [0, K), in both CFG branches (a `Mix` plan; the layer mask is data).
- `latent` (recipe 2): at step K the worlds' x_K are replaced by (1−σ)·mean x̂0 + σ·c·mean ε̂, the averaged
  noise rescaled back to unit variance, so the W worlds continue as one trajectory.
- `x0` (recipe 3): for steps [0, K) the clean estimates are averaged over seeds and each world re-noised
  to the next σ with its own noise (`LatentMerge` in x0 mode on steps 1…K).

A recipe's success on a problem is the mean over its W worlds. The grid over (a, b, K) is searched on one
half of the problems (even indices per task) and the best setting is reported on the other half, with
paired bootstrap intervals of its difference to each baseline. Cost: the measured time of one call
(W worlds per problem; a call that compiled is run again and timed) relative to one trajectory.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

from cos_jax.experiments.base import ExperimentError, Point, ReportedIn
from cos_jax.probes.plan import Plan, group_mean_matrix, merge_plan, mix_plan
from cos_jax.sampling.api import _run_jitted

RECIPES = ("hidden", "latent", "x0")
ANSWER_ON = 0.3  # least activation of the leading candidate for it to count as the video's answer


def answer_of(task, video: np.ndarray, meta: dict, success: bool) -> int:
    """The answer a video gives, for voting: the leading candidate of a multiple-choice task (-1 if none
    reaches ANSWER_ON); for other tasks, whether it succeeds (1) or not (0)."""
    if not task.multiple_choice:
        return int(success)
    acts = task.candidate_activations(video, meta)
    return int(acts.argmax()) if acts.max() >= ANSWER_ON else -1


class Ensemble(ReportedIn):
    report_module = "cos_jax.experiments.ensemble_report"
    name = "ensemble"
    defaults: ClassVar[dict] = {
        "tasks": ["maze@1", "tictactoe", "select_next"],
        "seeds_per_problem": 3,  # W
        "recipes": list(RECIPES),
        "layer_ranges": [[20, 30]],  # recipe 1: [a, b) pairs
        "merge_steps": [1, 5, 10],  # K: recipe 1 merges at steps [0, K), 2 at step K, 3 the x̂0 of [0, K)
        "batch": 96,  # worlds per call (a multiple of seeds_per_problem)
    }

    def check(self, config: dict, model: dict) -> None:
        w, layers = config["seeds_per_problem"], model["layers"]
        if w < 2:
            raise ExperimentError(f"seeds_per_problem = {w}: an ensemble needs at least 2 seeds per problem")
        if config["batch"] < w:
            raise ExperimentError(f"batch = {config['batch']} must hold one problem's {w} seeds (batch >= {w})")
        bad = [r for r in config["recipes"] if r not in RECIPES]
        if bad or not config["recipes"]:
            raise ExperimentError(f"recipes = {config['recipes']}: choose from {list(RECIPES)}")
        for pair in config["layer_ranges"]:
            if not (isinstance(pair, list) and len(pair) == 2 and 0 <= pair[0] < pair[1] <= layers):
                raise ExperimentError(
                    f"layer_ranges: {pair} is not a layer range [a, b) with 0 <= a < b <= {layers} (the model's layers)"
                )
        for k in config["merge_steps"]:
            if not 1 <= k < config["steps"]:
                raise ExperimentError(f"merge_steps: K = {k} must lie in [1, steps = {config['steps']})")
        if not config["merge_steps"]:
            raise ExperimentError("merge_steps is empty; give at least one K, e.g. merge_steps = [1]")

    def points(self, config: dict, info: dict) -> list[Point]:
        out = [Point("single", {"recipe": "single"})]
        for recipe in config["recipes"]:
            for k in config["merge_steps"]:
                if recipe == "hidden":
                    out += [Point(f"hidden-L{a:02d}-{b:02d}-K{k:02d}", {"recipe": recipe, "layers": [a, b], "K": k})
                            for a, b in config["layer_ranges"]]  # fmt: skip
                else:
                    out.append(Point(f"{recipe}-K{k:02d}", {"recipe": recipe, "K": k}))
        return out

    def next_points(self, config: dict, records: dict) -> list[Point]:
        return []

    def keep_steps(self, config: dict) -> list[int]:
        return []

    def plan_for(self, session, point: Point, worlds: int) -> Plan:
        cfg, p = session.config, point.params
        w, steps, layers = cfg["seeds_per_problem"], cfg["steps"], session.model.num_layers
        matrix = group_mean_matrix(max(1, worlds // w), w) if worlds % w == 0 else np.eye(worlds, dtype=np.float32)
        if p["recipe"] in ("single", "hidden"):
            a, b = p.get("layers", [0, 0])
            return Plan(mix=mix_plan(matrix, steps, layers, steps=list(range(p.get("K", 0))),
                                     layers=list(range(a, b)), branches="both"))  # fmt: skip
        merge_steps = [p["K"]] if p["recipe"] == "latent" else list(range(1, p["K"] + 1))
        return Plan(merge=merge_plan(matrix, steps, merge_steps, mode=p["recipe"]))

    def run_point(self, session, point: Point) -> dict:
        from cos_jax.experiments.session import real_count
        from cos_jax.tasks import get_task

        w, n = session.config["seeds_per_problem"], session.num_samples
        out = {"success": np.zeros((n, w)), "score": np.zeros((n, w)), "answer": np.zeros((n, w), np.int32)}
        seconds = []
        for c, chunk in enumerate(session.chunks(per_call=w)):
            worlds = np.repeat(chunk, w)
            noise_index = worlds * w + np.tile(np.arange(w), len(chunk))
            plan = self.plan_for(session, point, len(worlds))
            compiled = _run_jitted._cache_size()
            for _ in range(2):  # a call that compiled is timed again, so the cost excludes compilation
                t0 = time.perf_counter()
                traj = session.run(worlds, noise_index, plan, session.plan_seed(c))
                elapsed = time.perf_counter() - t0
                if _run_jitted._cache_size() == compiled:
                    break
                compiled = _run_jitted._cache_size()
            seconds.append(elapsed)
            real = real_count(chunk)
            videos = session.model.decode(traj.latent[: real * w])
            for j, p in enumerate(chunk[:real]):
                sample = session.samples[p]
                task = get_task(sample.task)
                for k in range(w):
                    video = videos[j * w + k]
                    result = task.score(video, sample.meta)
                    out["success"][p, k], out["score"][p, k] = float(result.success), result.score
                    out["answer"][p, k] = answer_of(task, video, sample.meta, result.success)
        return out | {"call_seconds": float(np.median(seconds)), "calls": len(seconds)}
