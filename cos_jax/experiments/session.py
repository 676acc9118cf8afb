"""What an experiment runs against: the model, its held-out samples and their conditions, in fixed chunks.

A `Session` owns the sampling calls. Worlds are the samples (world i starts from the noise of seed + i, the
same in every sweep point, so points are paired), run `batch` at a time; the last chunk is padded with
repeats of its last sample, so every call has one shape and a sweep compiles once per plan structure
(noise mode, captures). Chunks are fixed by the config alone, which makes a point's numbers independent
of resumes and shards.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from cos_jax.experiments.base import ExperimentError, task_entries
from cos_jax.experiments.models import ExperimentModel, take_worlds
from cos_jax.probes.plan import Plan
from cos_jax.sampling import Conditions, SamplingConfig, StartState, Trajectory, initial_noise, sample


@dataclasses.dataclass
class Session:
    config: dict
    model: ExperimentModel
    samples: list  # cos_jax.tasks Sample
    labels: list[str]  # the TASK[@DIFFICULTY] entry of each sample
    cond: Conditions
    sampling: SamplingConfig
    ids: list[dict] = dataclasses.field(default_factory=list)  # per sample: split index and role
    kept: dict = dataclasses.field(default_factory=dict)  # what an experiment keeps between its points

    @functools.cached_property
    def device_mesh(self):
        """The mesh of the config's `mesh` (None: one device)."""
        from cos_jax.parallel import make_mesh

        return make_mesh(self.config["mesh"]) if self.config.get("mesh") else None

    @functools.cached_property
    def dit(self):
        """The model's DiT (or expert pair), placed on the mesh once when the config names one."""
        from cos_jax.parallel import shard_model

        dit, mesh = self.model.dit, self.device_mesh
        if mesh is None:
            return dit
        return tuple(shard_model(e, mesh) for e in dit) if isinstance(dit, tuple | list) else shard_model(dit, mesh)

    @property
    def num_samples(self) -> int:
        return len(self.samples)

    @property
    def switch_step(self) -> int | None:
        return self.sampling.switch_step() if len(self.model.experts) == 2 else None

    def chunks(self, pair: bool = False, subset=None, per_call: int = 1) -> list[np.ndarray]:
        """Sample indices per call (all samples, or `subset`), each padded to the chunk size with repeats of
        its last sample. The chunk size is `batch` worlds over `per_call` worlds per sample (2 for paired
        runs, W seeds for an ensemble)."""
        chosen = np.arange(self.num_samples) if subset is None else np.asarray(subset)
        per_call = 2 if pair else per_call
        size = min(max(1, self.config["batch"] // per_call), len(chosen))
        out = []
        for start in range(0, len(chosen), size):
            idx = chosen[start : start + size]
            out.append(np.concatenate([idx, np.full(size - len(idx), idx[-1])]))
        return out

    def noise(self, index: np.ndarray):
        return initial_noise([self.config["seed"] + int(i) for i in index], self.model.latent_shape)

    def trajectories(
        self,
        make_plan: Callable[[int], Plan],
        *,
        pair: bool = False,
        keep_steps=(),
        keep_latents: bool = False,
        keep_states: bool | Sequence[int] = False,
        start: Callable[[int], StartState] | None = None,
        subset=None,
    ) -> Iterator[tuple[np.ndarray, int, Trajectory]]:
        """Run every chunk: yields (sample indices with padding, number of real samples, trajectory).

        `make_plan(num_worlds)` builds the plan of one call. With `pair`, each call holds the chunk twice,
        [clean | perturbed], from the same initial noise: the plan decides what differs. `subset` runs only
        those samples. `start(c)` gives the state call c starts from (`sample(start=)`).
        """
        for c, index in enumerate(self.chunks(pair, subset)):
            worlds = np.concatenate([index, index]) if pair else index
            traj = self.run(worlds, worlds, make_plan(len(worlds)), self.plan_seed(c), keep_steps=keep_steps,
                            keep_latents=keep_latents, keep_states=keep_states,
                            start=None if start is None else start(c))  # fmt: skip
            yield index, real_count(index), traj

    def run(self, worlds, noise_index, plan: Plan, plan_seed: int, *, keep_steps=(), keep_latents: bool = False,
            keep_states: bool | Sequence[int] = False, start: StartState | None = None) -> Trajectory:  # fmt: skip
        """One sampling call: world j is sample `worlds[j]` from the initial noise of seed + `noise_index[j]`;
        NaN/inf in a final latent is an error naming the samples."""
        import jax.numpy as jnp

        worlds = np.asarray(worlds)
        traj = sample(self.dit, take_worlds(self.cond, worlds, self.num_samples), self.sampling,
                      noise=jnp.asarray(self.noise(np.asarray(noise_index))), plan=plan, plan_seed=plan_seed,
                      keep_steps=list(keep_steps), keep_latents=keep_latents, keep_states=keep_states,
                      start=start, policy=self.config["policy"], mesh=self.device_mesh)  # fmt: skip
        self.check_finite(traj.latent, worlds, f"plan seed {plan_seed}")
        return traj

    def call(self, fn, inputs: dict, plan: Plan, keep, start: StartState | None = None, sampling=None):
        """Run a jitted sampling function `fn(experts, cond, noise, plan, key, keep, start, *, config, policy)`
        (an experiment's own reduction of `run_trajectory`) on one call's `inputs`: over the config's mesh
        when it names one, like `sample` (host arrays back, on every process), else on one device."""
        import jax

        from cos_jax.parallel import shard_world_call

        run = functools.partial(fn, config=sampling or self.sampling, policy=self.config["policy"])
        experts = tuple(self.dit) if isinstance(self.dit, tuple | list) else (self.dit,)
        args = (experts, inputs["cond"], inputs["noise"], plan, jax.random.key(inputs["plan_seed"]), keep, start)
        return run(*args) if self.device_mesh is None else shard_world_call(run, self.device_mesh, *args)

    def decoded_steps(self, subset=None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Clean runs with x̂0 kept at every step: yields (real sample indices, uint8 x̂0 videos [S, n, T, H, W, 3],
        final videos [n, T, H, W, 3]) per call."""
        steps = self.config["steps"]
        for index, real, traj in self.trajectories(lambda w: Plan(), keep_steps=range(steps), subset=subset):
            x0 = self.model.decode(traj.x0[:, :real].reshape(-1, *traj.x0.shape[2:]))
            yield index[:real], x0.reshape(steps, real, *x0.shape[1:]), self.model.decode(traj.latent[:real])

    def entry_subset(self, entry: str) -> list[int]:
        """The samples of one TASK[@DIFFICULTY] entry."""
        from cos_jax.train.evaluate import entry_label

        label = entry_label(entry)
        return [i for i, lab in enumerate(self.labels) if lab == label]

    def inputs(self, c: int, index: np.ndarray, pair: bool = False) -> dict:
        """What call `c` over the samples `index` runs on: worlds, conditions, initial noise, plan seed."""
        import jax.numpy as jnp

        worlds = np.concatenate([index, index]) if pair else index
        return {
            "worlds": worlds,
            "cond": take_worlds(self.cond, worlds, self.num_samples),
            "noise": jnp.asarray(self.noise(worlds)),
            "plan_seed": self.plan_seed(c),
            "real": real_count(index),
        }

    def plan_seed(self, call: int) -> int:
        """Seed of the noise a plan injects in call `call` (fixed by the config, so resumes and shards agree)."""
        return self.config["seed"] * 7919 + call

    def check_finite(self, latent, index: np.ndarray, where: str) -> None:
        """NaN or inf in a final latent is an error naming the samples, never a silent result."""
        bad = ~np.isfinite(np.asarray(latent).reshape(latent.shape[0], -1)).all(axis=1)
        if bad.any():
            names = sorted({int(index[w % len(index)]) for w in np.flatnonzero(bad)})
            raise ExperimentError(
                f"NaN/inf in the final latent of sample(s) {names} ({where}); lower the perturbation magnitude "
                "or use the fp32 policy"
            )

    def score(self, videos: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Task scores and successes of uint8 videos [n, T, H, W, 3] for the samples `index`."""
        from cos_jax.tasks import get_task

        results = [
            get_task(self.samples[i].task).score(v, self.samples[i].meta) for v, i in zip(videos, index, strict=True)
        ]
        return np.array([r.score for r in results]), np.array([float(r.success) for r in results])


def real_count(chunk: np.ndarray) -> int:
    """Samples of a chunk before its padding (repeats of the last sample)."""
    return len(chunk) - int(np.sum(chunk == chunk[-1])) + 1


def build_session(config: dict, model: ExperimentModel, experiment=None) -> Session:
    """Held-out task samples at the model's size, their conditions, and the sampler of the config. An
    experiment with its own samples (e.g. paired problems) provides `make_samples(config, model)`."""
    maker = getattr(experiment, "make_samples", None) or task_samples
    samples, labels, ids = maker(config, model)
    cond = model.conditions(np.stack([s.first_frame for s in samples]), [s.prompt for s in samples],
                            config["policy"])  # fmt: skip
    return Session(config, model, samples, labels, cond, model.sampling(config), ids)


def task_samples(config: dict, model: ExperimentModel) -> tuple[list, list[str], list[dict]]:
    """`per_task` held-out samples of every task entry from split index `start`; sample i is world seed + i."""
    from cos_jax.tasks import get_task

    samples, labels, ids = [], [], []
    for label, name, level in task_entries(config):
        task = get_task(name)
        for i in range(config["per_task"]):
            samples.append(task.generate_for_split(config["split"], config["start"] + i, level, model.resolution,
                                                   model.frames))  # fmt: skip
            labels.append(label)
            ids.append({"index": config["start"] + i, "seed": config["seed"] + len(ids)})
    return samples, labels, ids
