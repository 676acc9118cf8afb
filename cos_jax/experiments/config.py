"""Experiment configs: one flat TOML file per experiment and model scale, overridable with `--set key=value`.

A config names the experiment, the model (``toy``, a `cos-jax convert` / diffusers folder or a random
``random:…`` one), the samples (procedural tasks, a split, how many per task), the sampler and the
experiment's sweep. Every key has a default, either common (`COMMON`) or the experiment's own
(`Experiment.defaults`); a key that is neither, or a value of the wrong type, is an `ExperimentError` naming
it. The file's first line is a comment holding the command that runs it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from cos_jax.experiments.base import ExperimentError

# Keys every experiment takes, with their defaults. Experiments add their own.
COMMON: dict[str, Any] = {
    "experiment": "",
    "model": "toy",  # "toy", "toy-a14b", a model folder (cos-jax convert output or diffusers layout), or
    # "random:i2v-a14b" / "random:tiny-i2v-a14b" (I2V-A14B's shape with random weights: throughput runs, tests)
    "model_kind": "any",  # the kind of model the config is written for: any, toy, toy-a14b, i2v-a14b, i2v
    "tasks": ["select_next", "tictactoe", "maze@1", "majority_colour"],  # TASK[@DIFFICULTY] entries
    "per_task": 48,  # samples per task entry
    "start": 300,  # first split index (held-out samples from the test split)
    "split": "test",
    "resolution": 0,  # frame size of the samples; 0 = the model's own (toy: 32)
    "frames": 0,  # frames per video (4n+1); 0 = the model's own (toy: 17)
    "seed": 1,  # world i starts from the initial noise of seed + i (paired across sweep points)
    "steps": 50,
    "shift": 5.0,
    "guidance": 5.0,
    "boundary": 875.0,  # two-expert models: the high-noise expert runs while t >= boundary
    "policy": "fp32",
    "vae_precision": "fp32",  # model folders: VAE arithmetic, "fp32" or "tf32" (NVIDIA GPUs, ~6x faster decode)
    "batch": 64,  # worlds per sampling call (the last call is padded, so every call has one shape)
    "mesh": "",  # devices of each call (all processes'), e.g. "data=8" or "data=2,context=4"; "" = one device
}


def parse_value(text: str) -> Any:
    """A `--set` value as TOML (numbers, booleans, [lists], "strings"), or the bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _check_type(key: str, value: Any, default: Any, where: str) -> Any:
    """`value` coerced to the type of `default` (ints are accepted for floats), else an `ExperimentError`."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list)
        if ok and default and all(isinstance(d, float) for d in default):
            ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            value = [float(v) for v in value] if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ExperimentError(
            f"{where}: {key} = {value!r} should be {type(default).__name__} (like the default {default!r})"
        )
    return value


def load_config(path: str | Path, overrides: list[str] | None = None, registry: dict | None = None) -> dict:
    """Read a config file, apply `key=value` overrides, fill defaults and check every key and type."""
    from cos_jax.experiments.registry import EXPERIMENTS

    registry = registry or EXPERIMENTS
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"config {path} does not exist; configs live in configs/<model>/<experiment>.toml")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ExperimentError(f"{path} is not valid TOML ({err})") from None
    nested = [k for k, v in raw.items() if isinstance(v, dict)]
    if nested:
        raise ExperimentError(f"{path}: configs are flat key = value files; move the keys of [{nested[0]}] up")
    sets = {}
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ExperimentError(f"bad --set {item!r}: expected key=value, e.g. --set per_task=8")
        sets[key.strip()] = parse_value(text.strip())
    name = sets.get("experiment", raw.get("experiment"))
    if name not in registry:
        raise ExperimentError(
            f"{path}: unknown experiment {name!r}; choose one of {', '.join(sorted(registry))} "
            '(set experiment = "..." in the file)'
        )
    defaults = {**COMMON, **registry[name].defaults}
    config = dict(defaults)
    for where, values in ((str(path), raw), ("--set", sets)):
        for key, value in values.items():
            if key not in defaults:
                raise ExperimentError(
                    f"{where}: unknown key {key!r} for experiment {name!r}; known keys: {', '.join(sorted(defaults))}"
                )
            config[key] = _check_type(key, value, defaults[key], where)
    config["experiment"] = name
    check_common(config)
    return config


def check_common(config: dict) -> None:
    """Range checks on the common keys (experiments check their own)."""
    for key in ("per_task", "steps", "batch"):
        if config[key] < 1:
            raise ExperimentError(f"{key} = {config[key]} must be >= 1")
    if not config["tasks"]:
        raise ExperimentError("tasks is empty; name at least one task, e.g. tasks = ['maze@1']")
    if config["model_kind"] not in ("any", "toy", "toy-a14b", "i2v-a14b", "i2v"):
        raise ExperimentError(f"model_kind = {config['model_kind']!r}; choose any, toy, toy-a14b, i2v-a14b or i2v")
    if config["policy"] not in ("fp32", "bf16"):
        raise ExperimentError(f"policy = {config['policy']!r}; choose 'fp32' or 'bf16'")
    from cos_jax.wan.vae.model import VAE_PRECISIONS

    if config["vae_precision"] not in VAE_PRECISIONS:
        choices = " or ".join(map(repr, VAE_PRECISIONS))
        raise ExperimentError(f"vae_precision = {config['vae_precision']!r}; choose {choices}")
    if config["split"] not in ("train", "test"):
        raise ExperimentError(f"split = {config['split']!r}; choose 'test' (held out) or 'train'")
    if config["mesh"]:
        check_mesh(config["mesh"])


def check_mesh(spec: str) -> None:
    """A mesh spec that parses and uses every device there is (all processes'), else one clear line."""
    import jax

    from cos_jax.parallel import mesh_size, parse_mesh_spec

    try:
        needed = mesh_size(parse_mesh_spec(spec))
    except ValueError as err:
        raise ExperimentError(f"mesh = {spec!r}: {err}") from None
    if needed != jax.device_count():
        raise ExperimentError(f"mesh = {spec!r} needs {needed} devices; there are {jax.device_count()} "
                              f"(e.g. mesh = \"data={jax.device_count()}\")")  # fmt: skip


def command_line(path: str | Path) -> str | None:
    """The command in the config file's first line (a `# ...` comment), if any."""
    first = Path(path).read_text().splitlines()[:1]
    return first[0].lstrip("#").strip() if first and first[0].startswith("#") else None
