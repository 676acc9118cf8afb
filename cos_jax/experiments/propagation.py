"""`propagation`: how a perturbation at step s_t spreads through the rest of the trajectory — Fig. 3(c).

Every call holds each sample twice from the same initial noise, [clean | perturbed], and the plan noises
only the second half at s_t. Inside the same jitted program, at every step s, linear CKA and unbiased-HSIC
CKA compare clean and perturbed (tokens × channels) for the latent x_s the DiT saw, for x̂0, and for the
block outputs of the chosen layers (conditional branch), so only [steps, samples] numbers leave the device.

Outputs: the s_t × s heatmap of 1 − CKA per representation; the sensitivity curve (1 − CKA at the final
step against s_t) beside the drop in success and the rate of changed outcomes from the same runs. On
two-expert models the switch step is marked, and `boundaries` (e.g. [875, 900]) repeats the sweep with
the expert switch moved: the report says whether the sensitivity peak moves with the switch (an expert
effect) or stays.

Before s_t both halves are the clean run, the same for every point: each process runs that paired prefix
once per boundary (no injection, CKA at every step, the `StartState` of every injection step kept), and
every point starts from the prefix's state at its s_t (`sample(start=)`) and takes its CKA before s_t
from the prefix. The records are those of whole runs (bit-identical on CPU, tested) for 37 % fewer
denoising steps on the toy grid (40 % on the two-expert toy's and the VBVR config's), and a sweep
compiles two programs (the prefix, the points) whatever its injection steps. Calls go over the config's
mesh (`Session.call`).
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import jax
import numpy as np

from cos_jax.analysis.cka_jax import paired_cka_jax
from cos_jax.experiments.base import ExperimentError, Point, ReportedIn, check_indices
from cos_jax.experiments.perturb import MODES
from cos_jax.probes.plan import Plan, capture_plan, noise_plan
from cos_jax.sampling.loop import keep_x0, run_trajectory


@partial(jax.jit, static_argnames=("config", "policy"))
def _paired_run(experts, cond, noise, plan, key, keep, start, *, config, policy):
    """One paired trajectory batch (from `start` when given) -> final latents, CKA [S, B] (per layer
    [S, Lc, B]) of each half pair, and the kept start states."""
    out = run_trajectory(experts, cond, noise, plan, key, keep, config=config, policy=policy, start=start)
    b = noise.shape[0] // 2

    def halves(rep, world_axis):  # [..., 2B, *grid, p] -> clean, perturbed [..., B, n, p]
        flat = rep.reshape(*rep.shape[:world_axis], 2, b, -1, rep.shape[-1])
        return flat[..., 0, :, :, :], flat[..., 1, :, :, :]

    reps = {"latent": halves(out["xs"], 1), "x0": halves(out["x0"], 1)}
    if out["captures"] is not None:
        reps["layers"] = halves(out["captures"][:, :, 0], 2)  # [S, Lc, 2B, T, D] -> [S, Lc, B, T, D]
    cka = {name: paired_cka_jax(*pair) for name, pair in reps.items()}
    return out["latent"], cka, out["states"]


class Propagation(ReportedIn):
    report_module = "cos_jax.experiments.propagation_report"
    name = "propagation"
    paired = True
    defaults: ClassVar[dict] = {
        "modes": ["renoise", "replace"],
        "alpha": 1.0,
        "inject_steps": [0, 3, 6, 10, 15, 20, 25, 30, 35, 40, 45],
        "layers": [0, 2, 4, 6, 7],
        "capture_reducer": "full",  # "subsample" (every capture_stride-th token) at full size
        "capture_stride": 4,
        "capture_dtype": "float32",
        "boundaries": [],  # two-expert models: repeat the sweep at each of these boundaries (default: `boundary`)
        "batch": 32,
    }

    def check(self, config: dict, model: dict) -> None:
        bad = [m for m in config["modes"] if m not in MODES]
        if bad:
            raise ExperimentError(f"modes = {config['modes']}: unknown mode(s) {bad}; choose from {list(MODES)}")
        check_indices("inject_steps", config["inject_steps"], config["steps"], "step(s)")
        check_indices("layers", config["layers"], model["layers"], "layer(s)")
        if config["capture_reducer"] not in ("full", "subsample"):
            raise ExperimentError(f"capture_reducer = {config['capture_reducer']!r}; choose 'full' or 'subsample'")
        if config["batch"] < 2:
            raise ExperimentError("batch = 1: paired runs need batch >= 2 (clean and perturbed worlds)")

    def points(self, config: dict, info: dict) -> list[Point]:
        bounds = [(f"b{b:g}-", b) for b in config["boundaries"]] or [("", config["boundary"])]
        return [Point(f"{prefix}{mode}-t{s:02d}", {"mode": mode, "alpha": config["alpha"], "at": s, "boundary": b})
                for prefix, b in bounds for mode in config["modes"] for s in config["inject_steps"]]  # fmt: skip

    def next_points(self, config: dict, records: dict) -> list[Point]:
        return []

    def plan_for(self, session, point: Point, worlds: int) -> Plan:
        cfg, p = session.config, point.params
        steps, layers = cfg["steps"], session.model.num_layers
        half = worlds // 2
        noise = noise_plan(steps, session.model.latent_shape[0], worlds, steps=[] if p["at"] is None else [p["at"]],
                           worlds=list(range(half, worlds)), mode=p["mode"], alpha=p["alpha"])  # fmt: skip
        capture = None
        if cfg["layers"]:
            capture = capture_plan(steps, layers, steps=range(steps), layers=cfg["layers"],
                                   reducer=cfg["capture_reducer"], branches="cond", stride=cfg["capture_stride"],
                                   dtype=cfg["capture_dtype"])  # fmt: skip
        return Plan(noise=noise, capture=capture)

    def keep_steps(self, config: dict) -> list[int]:
        return list(range(config["steps"]))

    def sweep_steps(self, config: dict, points: list[Point]) -> int:
        """A point computes the steps from its s_t on; each boundary's prefix computes every step once."""
        prefixes = {p.params["boundary"] for p in points}
        return sum(config["steps"] - p.params["at"] for p in points) + config["steps"] * len(prefixes)

    def _calls(self, session, point: Point, sampling, keep, starts=None):
        """Run the point's paired calls: yields (call, sample indices, inputs, final latents, CKA as numpy,
        kept states), call c starting from `starts[c]` when given."""
        for c, index in enumerate(session.chunks(pair=True)):
            inputs = session.inputs(c, index, pair=True)
            plan = self.plan_for(session, point, len(inputs["worlds"]))
            start = None if starts is None else starts[c]
            latent, cka, states = session.call(_paired_run, inputs, plan, keep, start, sampling)
            latent = np.asarray(latent)
            session.check_finite(latent, index, f"call {c}")
            yield c, index, inputs, latent, jax.tree.map(np.asarray, cka), states

    def prefix(self, session, point: Point, sampling) -> list[dict]:
        """Per call, the paired run without an injection under the point's boundary: its CKA at every step
        and the `StartState` of every injection step (stacked; `state_slot[s]` is step s's). Run once per
        boundary by each process that needs it; only one boundary's prefix stays in memory (points come
        boundary by boundary)."""
        held = session.kept.get("propagation_prefix")
        if held is None or held[0] != sampling.boundary:
            cfg = session.config
            clean = Point("prefix", {**point.params, "alpha": 0.0, "at": None})
            keep = keep_x0(cfg["steps"], self.keep_steps(cfg), latents=True, states=cfg["inject_steps"])
            slots = np.asarray(keep.state_slot)
            calls = [
                {"cka": cka, "states": states, "state_slot": slots}
                for _, _, _, _, cka, states in self._calls(session, clean, sampling, keep)
            ]
            session.kept["propagation_prefix"] = held = (sampling.boundary, calls)
        return held[1]

    def run_point(self, session, point: Point) -> dict:
        cfg = session.config
        n, steps, at = session.num_samples, cfg["steps"], point.params["at"]
        names = ["latent", "x0", *[f"layer{layer}" for layer in cfg["layers"]]]
        out = {f"{k}_{name}": np.zeros((n, steps), np.float32) for k in ("cka", "ucka") for name in names}
        scores = {k: np.zeros(n) for k in ("score_clean", "success_clean", "score", "success")}
        keep = keep_x0(steps, self.keep_steps(cfg), latents=True)
        sampling = session.sampling
        if sampling.boundary is not None:
            sampling = sampling.replace(boundary=point.params["boundary"])
        switch = sampling.switch_step() if sampling.boundary is not None else None
        prefix = self.prefix(session, point, sampling)
        starts = None
        if prefix is not None:  # None: every step computed (a check of the shared prefix)
            starts = [call["states"].take(int(call["state_slot"][at])) for call in prefix]
        for c, index, inputs, latent, cka, _ in self._calls(session, point, sampling, keep, starts):
            if prefix is not None:  # the steps before s_t are the prefix's
                cka = jax.tree.map(lambda mine, theirs: np.concatenate([theirs[:at], mine[at:]]), cka,
                                   prefix[c]["cka"])  # fmt: skip
            real, b = inputs["real"], len(index)
            idx = index[:real]
            for stat, key in (("cka", "linear"), ("ucka", "unbiased")):
                for name in ("latent", "x0"):
                    out[f"{stat}_{name}"][idx] = cka[name][key][:, :real].T
                if "layers" in cka:
                    values = cka["layers"][key]  # [S, Lc, B]
                    for j, layer in enumerate(cfg["layers"]):
                        out[f"{stat}_layer{layer}"][idx] = values[:, j, :real].T
            videos = session.model.decode(np.concatenate([latent[:real], latent[b : b + real]]))
            scores["score_clean"][idx], scores["success_clean"][idx] = session.score(videos[:real], idx)
            scores["score"][idx], scores["success"][idx] = session.score(videos[real:], idx)
        return out | scores | {"switch_step": switch}
