"""Run an experiment: sweep points -> one record file each (atomic, resumable) -> results.json -> report.

Output folder::

    OUT/experiment.json        what ran: experiment, config, model (the shipped toys: their weights' sha256),
                               samples (a rerun must match it, weights included)
    OUT/command.txt            the last command line that ran it (shown in the report)
    OUT/points/<point>.npz     one finished sweep point (written to a temp file, then renamed)
    OUT/results.json           the summary, once every point is done (no timings: reruns are bit-identical)
    OUT/report.html, report.md, figures/*.png

A rerun skips points whose file exists, so a killed run continues where it stopped. `--shard i/n` runs
every n-th grid point from the i-th (sequential points, e.g. a bisection, run on shard 0);
`merge` joins shard folders. Grid points are numbered by the experiment, so every shard sees one list.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cos_jax.arrays_io import atomic_write
from cos_jax.experiments.base import Experiment, ExperimentError, Point
from cos_jax.experiments.config import COMMON

FORMAT = 1
IDENTITY = "experiment.json"
POINTS = "points"


def _point_files(out: Path) -> list[Path]:
    """The finished point records of an output folder (a killed write leaves only a hidden temporary)."""
    return sorted(p for p in (out / POINTS).glob("*.npz") if not p.name.startswith("."))


# ---- records ----------------------------------------------------------------------------------------


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=1, sort_keys=True) + "\n"))


def _write_record(target, record: dict) -> None:
    arrays = {k: v for k, v in record.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in record.items() if k not in arrays}
    np.savez(target, record_json=np.asarray(json.dumps(rest, sort_keys=True)), **arrays)


def save_record(path: Path, record: dict) -> None:
    """A point record: numpy arrays as npz entries, everything else as one JSON entry."""
    atomic_write(path, lambda tmp: _write_record(tmp, record))


def as_saved(record: dict) -> dict:
    """The record as it reads back from its file, without a file (processes other than the writer)."""
    buffer = io.BytesIO()
    _write_record(buffer, record)
    buffer.seek(0)
    return load_record(buffer)


def load_record(path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        record = json.loads(str(data["record_json"]))
        record.update({k: data[k] for k in data.files if k != "record_json"})
    return record


def load_records(out: Path) -> dict[str, dict]:
    return {p.stem: load_record(p) for p in _point_files(out)}


# ---- the output folder ------------------------------------------------------------------------------
def check_out(out: Path, identity: dict) -> None:
    """OUT must be new, empty, or hold this same experiment (config, model, samples)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExperimentError(f"--out {out} is a file; give a folder")
    ident = out / IDENTITY
    if ident.is_file():
        theirs = json.loads(ident.read_text())
        if "config" in theirs:  # a common key added since that run was made counts as its default there
            theirs = {**theirs, "config": {**COMMON, **theirs["config"]}}
        if theirs != identity:
            raise ExperimentError(
                f"--out {out} holds results of another run ({theirs.get('experiment')!r}; "
                f"{_what_differs(theirs, identity)}); use a new --out, or rerun with the same config to resume"
            )
    elif any(out.iterdir()):
        raise ExperimentError(f"--out {out} holds other files (no {IDENTITY}); give an empty or new folder")


def _changed_keys(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _what_differs(theirs: dict, ours: dict) -> str:
    """Between two run identities: the config keys, else the model's fields, else the samples or schedule."""
    keys = _changed_keys(theirs.get("config", {}), ours["config"])
    if keys:
        return f"config keys {', '.join(keys)} differ"
    old, new = theirs.get("model", {}), ours["model"]
    keys = _changed_keys(old, new)
    if not keys:
        return "the samples or schedule differ"
    return "the model differs: " + ", ".join(f"{k} {old.get(k, 'unrecorded')} there, {new.get(k)} now" for k in keys)


def identity_of(config: dict, model_info: dict, session_info: dict) -> dict:
    return {"format": FORMAT, "experiment": config["experiment"], "config": config, "model": model_info,
            **session_info}  # fmt: skip


def session_info(session) -> dict:
    """What the summaries need besides the records (sample labels, the schedule, the expert switch)."""
    rows = zip(session.samples, session.labels, session.ids, strict=True)
    return {
        "samples": [{"label": lab, "task": s.task, **ids} for s, lab, ids in rows],
        "sigmas": [float(x) for x in session.sampling.schedule().sigmas],
        "switch_step": session.switch_step,
    }  # fmt: skip


def parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 1
    i, sep, n = text.partition("/")
    if not (sep and i.isdigit() and n.isdigit()) or not 0 <= int(i) < int(n):
        raise ExperimentError(f"bad --shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/2 and 1/2")
    return int(i), int(n)


# ---- running ----------------------------------------------------------------------------------------
def check_model_kind(config: dict, model) -> None:
    """A config written for one kind of model refuses another (e.g. the paper's A14B protocol on the toy)."""
    kind = config["model_kind"]
    if kind != "any" and model.kind != kind:
        raise ExperimentError(
            f"this config is written for {kind} models; --model {model.name} is a {model.kind} model "
            "(use a config for that model, or --set model_kind=any to run it anyway)"
        )


def get_experiment(name: str) -> Experiment:
    from cos_jax.experiments.registry import EXPERIMENTS

    if name not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; choose one of {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


def run(config: dict, out: str | Path, *, shard: tuple[int, int] = (0, 1), command: str | None = None,
        progress: bool = True, model=None) -> dict | None:  # fmt: skip
    """Run (or resume) every point of this shard; finish with results + report when all points exist.

    Returns the results, or None when other shards' points are still missing.
    """
    import jax

    from cos_jax.experiments.session import build_session

    out = Path(out)
    exp, model = _prepare(config, model)
    session = build_session(config, model, exp)
    identity = identity_of(config, model.describe(), session_info(session))
    writer = jax.process_index() == 0  # under jax.distributed every process runs every call; one writes
    if writer:
        check_out(out, identity)
        write_json(out / IDENTITY, identity)
        if command:
            atomic_write(out / "command.txt", lambda tmp: Path(tmp).write_text(command + "\n"))
    _sync_processes("experiment folder ready")
    info = {**identity, "command": command}
    index, count = shard
    points = exp.points(config, info)
    grid = [p for p in points if not p.sequential]
    mine = grid[index::count] + ([p for p in points if p.sequential] if index == 0 else [])
    records = load_records(out)
    todo = [p for p in mine if p.id not in records]
    print(f"{config['experiment']}: {len(mine)} points in this shard ({len(mine) - len(todo)} done), "
          f"{session.num_samples} samples each, model {model.name}")  # fmt: skip
    bar = tqdm(total=len(todo), desc="sweep points", unit="point", disable=not progress)
    try:
        for point in todo:
            records[point.id] = _run_point(exp, session, point, out, writer)
            bar.update(1)
        while index == 0:  # sequential follow-ups (bisection) see this folder's records
            follow = [p for p in exp.next_points(config, records) if p.id not in records]
            if not follow:
                break
            bar.total += len(follow)
            for point in follow:
                records[point.id] = _run_point(exp, session, point, out, writer)
                bar.update(1)
    finally:
        bar.close()
    results = finish(out, info, records) if writer else None
    _sync_processes("experiment finished")
    return results


def _sync_processes(name: str) -> None:
    """A barrier across the processes of a `jax.distributed` run (nothing with one process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _prepare(config: dict, model=None):
    """The experiment and the model of a config, both checked against it."""
    from cos_jax.experiments.models import load_model

    exp = get_experiment(config["experiment"])
    model = model or load_model(config["model"], config["resolution"], config["frames"], config["vae_precision"])
    check_model_kind(config, model)
    exp.check(config, model.describe() | {"num_steps": config["steps"]})
    return exp, model


def _run_point(exp, session, point: Point, out: Path, writer: bool = True) -> dict:
    """Run one point and save its record (returned as it reads back: arrays stay arrays); a process that
    is not the writer keeps it in memory only."""
    t0 = time.perf_counter()
    record = exp.run_point(session, point)
    record = {"point": point.id, "params": point.params, **record, "seconds": round(time.perf_counter() - t0, 3)}
    if not writer:
        return as_saved(record)
    save_record(out / POINTS / f"{point.id}.npz", record)
    return load_record(out / POINTS / f"{point.id}.npz")


def missing_points(info: dict, records: dict) -> list[str]:
    exp = get_experiment(info["experiment"])
    wanted = [p.id for p in exp.points(info["config"], info)]
    wanted += [p.id for p in exp.next_points(info["config"], records)]
    return [i for i in wanted if i not in records]


def finish(out: Path, info: dict | None = None, records: dict | None = None) -> dict | None:
    """Summarise and report if every point is there; else say what is missing and return None."""
    out = Path(out)
    if info is None:
        info = json.loads((out / IDENTITY).read_text())
        saved = out / "command.txt"
        info["command"] = saved.read_text().strip() if saved.is_file() else None
    records = load_records(out) if records is None else records
    missing = missing_points(info, records)
    if missing:
        print(f"{len(missing)} points not in {out} yet (other shards?): run the remaining shards, then "
              f"`cos-jax experiment merge {out} SHARD_DIR ...`")  # fmt: skip
        return None
    exp = get_experiment(info["experiment"])
    results = exp.summarise(info["config"], info, records)
    results = {"experiment": info["experiment"], "config": info["config"], "model": info["model"],
               "num_samples": len(info["samples"]), **results}  # fmt: skip
    write_json(out / "results.json", results)
    write_report(out, results, records, info.get("command"))
    return results


def write_report(out: Path, results: dict, records: dict, command: str | None = None) -> None:
    from cos_jax.analysis.report import write_html, write_markdown

    exp = get_experiment(results["experiment"])
    sections = exp.report(results, out / "figures", records)
    meta = {"experiment": results["experiment"], "command": command or "", "model": results["model"],
            "samples": results["num_samples"], "config": results["config"]}  # fmt: skip
    title = f"cos-jax experiment: {results['experiment']} on {results['model']['name']}"
    write_html(out / "report.html", title, sections, meta)
    write_markdown(out / "report.md", title, sections, meta)
    print(f"wrote {out}/results.json, report.html, report.md, figures/")


def report(out: str | Path) -> dict:
    """Re-summarise the records in OUT and rewrite results.json and the report."""
    out = Path(out)
    if not (out / IDENTITY).is_file():
        raise ExperimentError(f"{out} holds no experiment ({IDENTITY} missing); give the --out of a run")
    results = finish(out)
    if results is None:
        raise ExperimentError(f"{out} is incomplete; finish or merge the shards first")
    return results


def merge(out: str | Path, shards: list[str | Path]) -> dict:
    """Join shard folders of one experiment into OUT (points copied), then summarise and report."""
    out = Path(out)
    idents = []
    for s in shards:
        ident = Path(s) / IDENTITY
        if not ident.is_file():
            raise ExperimentError(f"{s} holds no experiment ({IDENTITY} missing)")
        idents.append(json.loads(ident.read_text()))
    if any(i != idents[0] for i in idents[1:]):
        raise ExperimentError("the shards ran different experiments or configs; merge only shards of one run")
    check_out(out, idents[0])
    write_json(out / IDENTITY, idents[0])
    for s in shards:
        for p in _point_files(Path(s)):
            target = out / POINTS / p.name
            if Path(s).resolve() != out.resolve() and not target.exists():
                atomic_write(target, lambda tmp, p=p: Path(tmp).write_bytes(p.read_bytes()))
    results = finish(out, idents[0])
    if results is None:
        missing = missing_points(idents[0], load_records(out))
        raise ExperimentError(f"the merged shards still miss points: {', '.join(missing[:5])}")
    return results


def dry_run(config: dict, model=None) -> dict:
    """Sweep size, the compiled memory plan of one sampling call (per device under the config's `mesh`) and a
    time estimate from one timed step (on one device)."""
    import jax
    import jax.numpy as jnp

    from cos_jax.experiments.models import take_worlds
    from cos_jax.experiments.session import build_session
    from cos_jax.parallel import place_world_call
    from cos_jax.sampling.api import _run_jitted
    from cos_jax.sampling.loop import keep_x0

    exp, model = _prepare(config, model)
    small = {**config, "per_task": 1}
    session = build_session(small, model, exp)
    info = {"config": config, "model": model.describe(), "switch_step": session.switch_step}
    points = exp.points(config, info)
    pair = getattr(exp, "paired", False)
    full = len(config["tasks"]) * config["per_task"]
    per_call = max(1, min(config["batch"] // (2 if pair else 1), full))
    calls = -(-full // per_call)
    worlds = per_call * (2 if pair else 1)
    index = np.arange(worlds) % session.num_samples
    cond = take_worlds(session.cond, index, session.num_samples)
    plan = exp.plan_for(session, points[0], worlds)
    keep = keep_x0(config["steps"], exp.keep_steps(config), latents=pair)
    noise = jnp.asarray(session.noise(index))
    args = (tuple(model.experts), cond, noise, plan, jax.random.key(0), keep)
    mesh = session.device_mesh  # with a mesh, the plan is per device
    with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
        placed = args if mesh is None else place_world_call(mesh, *args)
        lowered = _run_jitted.lower(*placed, config=session.sampling, policy=config["policy"],
                                    attention_backend="auto", on_step=None)  # fmt: skip
        compiled = lowered.compile()
    mem = compiled.memory_analysis()
    memory = None if mem is None else {k: int(getattr(mem, k)) for k in (
        "argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes") if hasattr(mem, k)}  # fmt: skip
    dit = model.experts[0]
    x = jnp.concatenate([noise, noise])
    y = None if cond.y is None else jnp.concatenate([jnp.broadcast_to(cond.y, (worlds, *cond.y.shape[1:]))] * 2)
    ctx = jnp.concatenate([jnp.broadcast_to(cond.context, (worlds, *cond.context.shape[1:])),
                           jnp.broadcast_to(cond.negative, (worlds, *cond.negative.shape[1:]))])  # fmt: skip
    forward = jax.jit(lambda m, x, c, y: m(x, jnp.full((x.shape[0],), 500.0), c, y, policy=config["policy"]))
    step_flops = x.shape[0] * dit.config.forward_flops(dit.config.tokens(*x.shape[1:4]), ctx.shape[1])
    jax.block_until_ready(forward(dit, x, ctx, y))
    t0 = time.perf_counter()
    jax.block_until_ready(forward(dit, x, ctx, y))
    step_s = time.perf_counter() - t0
    estimate = step_s * calls * exp.sweep_steps(config, points)
    return {"points": len(points), "samples": full, "worlds_per_call": worlds, "calls_per_point": calls,
            "memory_bytes": memory, "step_seconds": round(step_s, 4),
            "step_gflop": round(step_flops / 1e9, 2), "gflop_per_s": round(step_flops / 1e9 / step_s, 1),
            "estimated_seconds": round(estimate, 1)}  # fmt: skip
