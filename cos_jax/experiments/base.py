"""The vocabulary every experiment shares: the error a user can fix, sweep points, the base sweeps and the
experiment protocol, and the checked task entries of a config. Imports nothing else of the experiments,
so the runner, the config reader, the session and the experiments all sit above it."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any, Protocol

from cos_jax.errors import UsageError


class ExperimentError(UsageError):
    """A bad input a user can fix (config, override, model, output folder); the CLI prints it in one line."""


@dataclasses.dataclass(frozen=True)
class Point:
    """One sweep point: a file-safe id and the parameters the experiment turns into a plan."""

    id: str
    params: dict
    sequential: bool = False  # runs on shard 0 (depends on other points, or anchors them)


class ReportedIn:
    """Experiments whose summary and report live in `report_module`, which defines
    `summarise(config, info, records) -> dict` and `report(results, out, records) -> list of sections`
    (imported on first use: figures need matplotlib, sweeps do not)."""

    report_module: str

    def sweep_steps(self, config: dict, points: list[Point]) -> int:
        """Denoising steps one call of every point computes in all (`--dry-run`'s time estimate)."""
        return config["steps"] * len(points)

    def summarise(self, config: dict, info: dict, records: dict) -> dict:
        return importlib.import_module(self.report_module).summarise(config, info, records)

    def report(self, results: dict, out: Path, records: dict) -> list:
        return importlib.import_module(self.report_module).report(results, out, records)


class CleanSweep(ReportedIn):
    """Base of experiments whose sampling calls carry no intervention: no follow-up points, an empty plan."""

    paired = False

    def next_points(self, config: dict, records: dict) -> list[Point]:
        return []

    def plan_for(self, session, point: Point, worlds: int):
        from cos_jax.probes.plan import Plan

        return Plan()

    def keep_steps(self, config: dict) -> list[int]:
        return []


class PerTaskSweep(CleanSweep):
    """One point per task entry, each a clean run keeping x̂0 at every step (see `Session.decoded_steps`)."""

    def points(self, config: dict, info: dict) -> list[Point]:
        return [Point(f"task-{t.replace('@', '-')}", {"entry": t}) for t in config["tasks"]]

    def keep_steps(self, config: dict) -> list[int]:
        return list(range(config["steps"]))


class Experiment(Protocol):
    name: str
    defaults: dict[str, Any]

    def check(self, config: dict, model_info: dict) -> None: ...

    def points(self, config: dict, model_info: dict) -> list[Point]: ...

    def next_points(self, config: dict, records: dict[str, dict]) -> list[Point]: ...

    def run_point(self, session, point: Point) -> dict: ...

    def sweep_steps(self, config: dict, points: list[Point]) -> int: ...

    def summarise(self, config: dict, info: dict, records: dict[str, dict]) -> dict: ...

    def report(self, results: dict, out: Path, records: dict[str, dict]) -> list: ...


def check_indices(name: str, values, bound: int, what: str) -> None:
    """Every value in [0, bound), else an `ExperimentError` naming the key and the valid range."""
    bad = [v for v in values if not 0 <= int(v) < bound]
    if bad:
        raise ExperimentError(f"{name} = {list(values)}: {what} {bad} out of range; valid: 0 to {bound - 1}")


def task_entries(config: dict) -> list[tuple[str, str, int]]:
    """(entry label, task name, difficulty) of every `tasks` entry, checked."""
    from cos_jax.tasks import TASKS
    from cos_jax.train.evaluate import entry_label, parse_entry

    out = []
    for entry in config["tasks"]:
        try:
            name, level = parse_entry(entry)
        except ValueError as err:
            raise ExperimentError(str(err)) from None
        if name not in TASKS:
            raise ExperimentError(f"tasks: unknown task {name!r}; choose from {', '.join(TASKS)}")
        out.append((entry_label(entry), name, level))
    return out
