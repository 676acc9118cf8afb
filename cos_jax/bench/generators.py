"""Video generators for the bench runner: the `Generator` protocol, the toy backend and the Wan hook.

A backend turns `Request`s (prompt, first frame, frame count, height, width, seed) into uint8 videos
[T, H, W, 3] of the requested size. `make_generator(model)` picks one:

* ``"toy"`` (default): the toy world shipped in the package. It runs at one fixed size (32×32, 17
  frames): each first frame is resized in (box filter) and each video resized out (nearest, even
  temporal resample); `note` says so for every request of another size. Batches are data-parallel: the
  world axis is sharded over a 1-D ``data`` mesh of the local devices and padded to a multiple of them.
* ``"wan"``: the real Wan2.2 I2V (or TI2V) pipeline, ``cos_jax.pipelines.wan.WanI2V`` over ``weights``
  (a ``cos-jax convert`` folder or a diffusers-format folder), one sample at a time (`FunctionGenerator`).
* ``"package.module:function"``: any function with that signature, the same way.
* Anything else: ``register_generator(name, factory)``; a factory takes ``steps``, ``guidance``,
  ``batch`` and any extra options, and returns a `Generator`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cos_jax.tasks.base import prepare_frames


@dataclasses.dataclass(frozen=True)
class Request:
    """One video to generate: `first_frame` is uint8 [H0, W0, 3] (any size); the output is
    [num_frames, height, width, 3]."""

    prompt: str
    first_frame: np.ndarray
    num_frames: int
    height: int
    width: int
    seed: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.num_frames, self.height, self.width


@runtime_checkable
class Generator(Protocol):
    """What the runner needs from a backend.

    `name`: recorded as the run's model. `settings`: everything that decides the outputs (JSON-able);
    a resumed run must match it. `layout`: how the work is spread (devices, worlds per call), recorded
    only. `batch_size`: the most requests one `generate` call takes.
    """

    name: str
    settings: dict[str, Any]
    layout: dict[str, Any]
    batch_size: int

    def note(self, request: Request) -> str | None:
        """How the backend adapts this request (resizes, ...), or None when it generates it as asked."""
        ...

    def generate(self, requests: list[Request]) -> list[np.ndarray]:
        """One uint8 video [T, H, W, 3] per request, in order."""
        ...


@functools.cache
def _toy_model(weights: str | None):
    from cos_jax.pipelines.toy import load_toy

    return load_toy(weights)


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """Noise injected into every sample's trajectory, as in the paper's Fig. 3(b): at one denoising step over
    all latent frames (`step`), or at one latent frame over every step (`frame`); `mode` replace / add /
    renoise with magnitude `alpha` (`cos_jax.probes.noise_plan`)."""

    mode: str
    alpha: float
    step: int | None = None
    frame: int | None = None

    @property
    def spec(self) -> str:
        """The `--perturb` text of this setting (what `parse_perturbation` reads)."""
        where = f"step={self.step}" if self.step is not None else f"frame={self.frame}"
        return f"{self.mode}:{where}:alpha={self.alpha:g}"

    def plan(self, num_steps: int, num_frames: int, num_worlds: int):
        from cos_jax.probes import Plan, noise_plan

        return Plan(noise=noise_plan(num_steps, num_frames, num_worlds, steps=self.step, frames=self.frame,
                                     mode=self.mode, alpha=self.alpha))  # fmt: skip


def perturb_settings(perturb: Perturbation | None) -> dict:
    """The run-record entry of a perturbation: none for a clean run, so clean records stay as they were."""
    return {} if perturb is None else {"perturb": dataclasses.asdict(perturb)}


def parse_perturbation(text: str | None) -> Perturbation | None:
    """`MODE:step=S:alpha=A` or `MODE:frame=F:alpha=A` (e.g. `replace:step=20:alpha=1`); None for None."""
    if text is None:
        return None
    form = "give MODE:step=S:alpha=A or MODE:frame=F:alpha=A, e.g. replace:step=20:alpha=1"
    mode, *fields = text.split(":")
    try:
        values = dict(f.split("=", 1) for f in fields)
        where = {k: int(values.pop(k)) for k in ("step", "frame") if k in values}
        alpha = float(values.pop("alpha", "1"))
    except ValueError:
        raise ValueError(f"--perturb {text!r}: {form}") from None
    if mode not in ("replace", "add", "renoise") or len(where) != 1 or values:
        raise ValueError(f"--perturb {text!r}: {form} (modes replace, add, renoise)")
    return Perturbation(mode, alpha, **where)


class ToyGenerator:
    """The shipped toy world, data-parallel over local devices (see the module docstring).

    `devices`: a count (the first N local devices) or the devices themselves; default all local devices.
    The model is loaded on the first `generate` call, so a run with nothing left to do loads nothing.
    """

    name = "toy"

    def __init__(
        self,
        steps: int = 50,
        guidance: float = 5.0,
        batch: int = 8,
        weights: str | None = None,
        devices: int | Sequence[Any] | None = None,
        perturb: Perturbation | None = None,
    ):
        import jax

        from cos_jax.parallel import make_mesh
        from cos_jax.pipelines.toy import toy_sampling
        from cos_jax.wan.toy import ToySpec

        if steps < 1 or batch < 1:
            raise ValueError(f"steps and batch must be >= 1, got steps={steps}, batch={batch}")
        local = jax.local_devices()
        if isinstance(devices, int):
            if not 1 <= devices <= len(local):
                raise ValueError(f"--devices {devices}: this host has {len(local)} local devices")
            devices = local[:devices]
        devices = list(devices) if devices is not None else local
        n = len(devices)
        self.weights = weights
        self.spec = ToySpec()
        self.batch_size = -(-batch // n) * n  # whole worlds per device; the last batch is padded to this
        self.mesh = make_mesh(f"data={n}", devices)
        self.config = toy_sampling(steps, guidance)
        self.model = self.dit = None
        self.perturb = perturb
        self.settings = {
            **perturb_settings(perturb),
            "weights": weights or "shipped toy_ema.npz",
            "resolution": self.spec.resolution,
            "frames": self.spec.frames,
            "sampling": dataclasses.asdict(self.config),
        }
        self.layout = {"devices": n, "platform": devices[0].platform, "mesh": f"data={n}",
                       "worlds_per_call": self.batch_size}  # fmt: skip

    def _load(self) -> None:
        from cos_jax.parallel import shard_model

        if self.model is None:
            self.model, spec = _toy_model(self.weights)
            if spec != self.spec:
                raise ValueError(f"toy weights {self.weights} are for {spec}, expected {self.spec}")
            self.dit = shard_model(self.model.dit, self.mesh)  # no mesh axis but `data` > 1: replicated

    def note(self, request: Request) -> str | None:
        r, t = self.spec.resolution, self.spec.frames
        if request.shape == (t, r, r):
            return None
        return (
            f"toy model runs at {r}x{r}, {t} frames: first frame resized to {r}x{r} (box filter), "
            f"video resized to {request.height}x{request.width}, {request.num_frames} frames "
            "(nearest / box filter, even temporal resample)"
        )

    def generate(self, requests: list[Request]) -> list[np.ndarray]:

        from cos_jax.pipelines.toy import decode_video, toy_conditions
        from cos_jax.sampling import initial_noise, sample

        if not 0 < len(requests) <= self.batch_size:
            raise ValueError(f"toy generator takes 1 to {self.batch_size} requests per call, got {len(requests)}")
        self._load()
        worlds = requests + [requests[-1]] * (self.batch_size - len(requests))  # pad; dropped below
        r = self.spec.resolution
        firsts = np.stack([prepare_frames(np.asarray(q.first_frame)[None], r, 1)[0] for q in worlds])
        cond = toy_conditions(self.model, self.spec, firsts, [q.prompt for q in worlds])
        noise = initial_noise([q.seed for q in worlds], self.spec.latent_shape)
        plan = None if self.perturb is None else self.perturb.plan(self.config.steps, noise.shape[1], len(worlds))
        traj = sample(self.dit, cond, self.config, noise=noise, keep_steps=[], plan=plan, mesh=self.mesh)
        videos = decode_video(self.spec, traj.latent[: len(requests)])
        return [prepare_frames(v, (q.height, q.width), q.num_frames) for v, q in zip(videos, requests, strict=True)]


class FunctionGenerator:
    """A one-sample function ``fn(prompt, first_frame, num_frames, height, width, seed, **options)`` as a
    `Generator` (batch size 1). Options the function does not accept are left out and listed in `ignored`."""

    batch_size = 1

    def __init__(self, name: str, fn: Callable[..., np.ndarray], options: dict[str, Any] | None = None):
        params = inspect.signature(fn).parameters.values()
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        accepted = {p.name for p in params}
        options = options or {}
        self.name = name
        self.fn = fn
        self.options = {k: v for k, v in options.items() if takes_any or k in accepted}
        self.ignored = sorted(set(options) - set(self.options))
        self.settings = {"function": f"{fn.__module__}:{fn.__qualname__}", **self.options}
        self.layout = {"worlds_per_call": 1}

    def note(self, request: Request) -> str | None:
        return None

    def generate(self, requests: list[Request]) -> list[np.ndarray]:
        return [
            np.asarray(self.fn(q.prompt, q.first_frame, q.num_frames, q.height, q.width, q.seed, **self.options))
            for q in requests
        ]


def _import_function(spec: str) -> Callable[..., np.ndarray]:
    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load generator function {spec!r} ({e}); give it as package.module:function") from e
    if not callable(fn):
        raise ValueError(f"{spec!r} is not a function")
    return fn


def _wan(steps: int, guidance: float, batch: int, weights: str | None = None, **options: Any) -> Generator:
    """The real Wan2.2 I2V (or TI2V) pipeline: `cos_jax.pipelines.wan.WanI2V` over `--weights DIR` (a
    `cos-jax convert` folder or a diffusers-format folder), paper preset with `steps` and `guidance`."""
    if weights is None:
        raise ValueError("--model wan needs --weights DIR: a `cos-jax convert` folder or a diffusers-format folder")
    from cos_jax.pipelines.components import load_components
    from cos_jax.pipelines.wan import WanI2V

    perturb = options.pop("perturb", None)
    vae_precision = options.pop("vae_precision", "fp32")
    unknown = sorted(set(options) - {"devices"})
    if unknown:
        raise ValueError(f"--model wan does not take {', '.join(unknown)}")
    components = load_components(weights, vae_precision=vae_precision)
    pipeline = WanI2V(components, steps=steps, guidance=guidance, perturb=perturb)
    generator = FunctionGenerator("wan", pipeline.generate_video)
    # fp32 (the default) is not recorded, so the records of earlier runs still resume
    precision = {} if vae_precision == "fp32" else {"vae_precision": vae_precision}
    generator.settings = {**generator.settings, "weights": str(weights), "steps": steps, "guidance": guidance,
                          **perturb_settings(perturb), **precision}  # fmt: skip
    return generator


GENERATORS: dict[str, Callable[..., Generator]] = {"toy": ToyGenerator, "wan": _wan}


def register_generator(name: str, factory: Callable[..., Generator]) -> None:
    """Make ``make_generator(name)`` (and ``--model name``) build a backend with ``factory(steps=, guidance=,
    batch=, **options)``."""
    GENERATORS[name] = factory


def make_generator(
    model: str = "toy", *, steps: int = 50, guidance: float = 5.0, batch: int = 8, **options: Any
) -> Generator:
    """A backend by name (``toy``, ``wan``, a registered name) or as ``package.module:function``."""
    if model in GENERATORS:
        return GENERATORS[model](steps=steps, guidance=guidance, batch=batch, **options)
    if ":" in model:
        return FunctionGenerator(model, _import_function(model), {"steps": steps, "guidance": guidance, **options})
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(GENERATORS)}, or give package.module:function")
