"""Generate a video for every sample of a VBVR-Bench-style folder, resumably, for VBVR-EvalKit or
`cos-jax bench evaluate`.

DATA: ``<data>/<split>/<task>/<sample>/{first_frame.png, prompt.txt, ground_truth.mp4[, meta.json]}`` with
split folders ``In-Domain[_50]`` / ``Out-of-Domain[_50]`` (`cos_jax.tasks.bench.list_samples`).
OUT: ``<out>/<split>/<task>/<sample>.mp4`` (``00000.mp4`` ...), the names VBVR-EvalKit collects, plus
the run record ``run.json`` (``run.shard-<i>-of-<n>.json`` for ``--shard i/n``).

Each sample is generated at its ground truth's frame count and size (meta.json, else the mp4's
container). Requests of one shape are batched together. Resuming: an output that exists and reads back
at the expected shape is skipped; every mp4 is written to a temp file and renamed, so a killed run
leaves no half-written video. Seeds come from the task and sample names (`sample_seed`), so any
batching, resume or sharding gives every sample the same seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cos_jax.arrays_io import atomic_write
from cos_jax.bench.generators import Generator, Request
from cos_jax.tasks.base import prepare_frames
from cos_jax.tasks.bench import BenchEntry, list_samples, read_first_frame, read_prompt, sample_shape, split_of
from cos_jax.tasks.video_io import probe_video, write_mp4

RECORD_FORMAT = 1
SEED_POLICY = "seed = (int.from_bytes(sha256('<task>/<sample>')[:4], 'big') + base_seed) mod 2**31"
SPLITS = ("id", "ood", "all")


@dataclasses.dataclass(frozen=True)
class Job:
    """One sample to generate: where it comes from and goes, its seed and output shape (T, H, W)."""

    entry: BenchEntry
    out: Path
    seed: int
    shape: tuple[int, int, int]

    @property
    def key(self) -> str:
        return f"{self.entry.split_dir}/{self.entry.task}/{self.entry.sample_id}"


class BenchRunError(ValueError):
    """A bad input to the runner (data folder, selection, shard, conflicting earlier run)."""


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    i, sep, n = text.partition("/")
    if not (sep and i.strip().isdigit() and n.strip().isdigit()) or not 0 <= int(i) < int(n):
        raise BenchRunError(f"bad --shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4 ... 3/4 for four hosts")
    return int(i), int(n)


def sample_seed(task: str, sample: str, base: int = 0) -> int:
    """The seed of one sample (`SEED_POLICY`): fixed by task and sample names, not by run order."""
    digest = hashlib.sha256(f"{task}/{sample}".encode()).digest()
    return (int.from_bytes(digest[:4], "big") + base) % 2**31


def output_path(out: str | os.PathLike, entry: BenchEntry) -> Path:
    """``<out>/<split>/<task>/<NNNNN>.mp4``; sample folders must be numbered, as VBVR-EvalKit pairs them by number."""
    if not entry.sample_id.isdigit():
        raise BenchRunError(
            f"sample folder {entry.folder} is not numbered; VBVR-Bench samples are 00000, 00001, ... "
            "and VBVR-EvalKit pairs videos with them by that number"
        )
    return Path(out) / entry.split_dir / entry.task / f"{int(entry.sample_id):05d}.mp4"


def select(
    entries: list[BenchEntry],
    split: str = "all",
    tasks: list[str] | None = None,
    limit: int | None = None,
    shard: tuple[int, int] = (0, 1),
) -> list[BenchEntry]:
    """Filter by split (id / ood / all) and task names, keep the first `limit` samples of each task, then
    every n-th sample from the i-th for shard (i, n). Every host computes the same list, so shards are
    disjoint and together cover the selection."""
    if split not in SPLITS:
        raise BenchRunError(f"bad --split {split!r}; choose from {', '.join(SPLITS)}")
    if limit is not None and limit < 1:
        raise BenchRunError(f"bad --limit {limit}: must be >= 1 (samples per task)")
    if tasks:
        known = sorted({e.task for e in entries})
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise BenchRunError(
                f"unknown task(s) {', '.join(unknown)} in this data folder; it holds {', '.join(known)}"
            )
    chosen = [
        e for e in entries if (split == "all" or split_of(e.split_dir) == split) and (not tasks or e.task in tasks)
    ]
    if not chosen:
        raise BenchRunError(f"no samples left after --split {split} and --tasks {','.join(tasks or ['(all)'])}")
    if limit is not None:
        seen: dict[tuple[str, str], int] = defaultdict(int)
        kept = []
        for e in chosen:
            seen[e.split_dir, e.task] += 1
            if seen[e.split_dir, e.task] <= limit:
                kept.append(e)
        chosen = kept
    i, n = shard
    return chosen[i::n]


def is_done(path: Path, shape: tuple[int, int, int] | None = None) -> bool:
    """An output that exists, reads back (container intact) and, when given, has the shape (T, H, W)."""
    try:
        found = probe_video(path)
    except ValueError:
        return False
    return shape is None or found == tuple(shape)


def record_name(shard: tuple[int, int]) -> str:
    return "run.json" if shard[1] == 1 else f"run.shard-{shard[0]}-of-{shard[1]}.json"


def _normalised(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """`key: old -> new` for every (nested) key whose value differs."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


def load_record(out: Path, shard: tuple[int, int], identity: dict) -> dict:
    """This shard's run record, after checking every record in `out` was made with the same settings."""
    for path in sorted(out.glob("run*.json")):
        try:
            other = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise BenchRunError(f"cannot read the run record {path} ({e}); move it away to start afresh") from e
        old = {k: other.get(k) for k in identity}
        if old != identity:
            diff = "; ".join(differences(old, identity))
            raise BenchRunError(
                f"{out} holds videos from a run with other settings ({path.name}: {diff}); use another output "
                f"folder, or delete {path.name} to mix runs on purpose"
            )
    path = out / record_name(shard)
    if path.is_file():
        return json.loads(path.read_text())
    return {"format": RECORD_FORMAT, **identity, "seed_policy": SEED_POLICY, "runs": [], "samples": {}}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _remove_stale_temps(path: Path) -> None:
    """Temp files a killed writer of this output left behind (``.<stem>.*<suffix>``, see `atomic_write`)."""
    for tmp in path.parent.glob(f".{path.stem}.*{path.suffix}"):
        tmp.unlink(missing_ok=True)


def _batches(jobs: list[Job], size: int) -> list[list[Job]]:
    """Jobs grouped by output shape (first-seen order), cut into batches of at most `size`."""
    groups: dict[tuple[int, int, int], list[Job]] = defaultdict(list)
    for j in jobs:
        groups[j.shape].append(j)
    return [g[k : k + size] for g in groups.values() for k in range(0, len(g), size)]


class _Run:
    """One invocation's state: the record it updates and the counts it reports."""

    def __init__(self, out: Path, shard: tuple[int, int], generator: Generator, seed: int, info: dict):
        identity = _normalised({"model": generator.name, "settings": {**generator.settings, "base_seed": seed}})
        self.path = out / record_name(shard)
        self.record = load_record(out, shard, identity)
        self.info = {
            "started": _now(),
            **info,
            "layout": _normalised(generator.layout),
            "skipped": 0,
            "generated": 0,
            "failed": 0,
        }
        self.record["runs"].append(self.info)
        self.samples = self.record["samples"]
        self.generator = generator
        self.notes_seen: set[str] = set()

    def save(self) -> None:
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(json.dumps(self.record, indent=1)))

    def fail(self, key: str, err: Exception) -> None:
        self.samples[key] = {"error": f"{type(err).__name__}: {err}", "at": _now()}
        self.info["failed"] += 1
        tqdm.write(f"warning: {key}: {err}", file=sys.stderr)

    def plan(self, entries: list[BenchEntry], out: Path, seed: int, progress: bool) -> list[Job]:
        """Jobs for the samples whose output is missing or broken; counts the others as skipped."""
        jobs = []
        for e in tqdm(entries, desc="checking outputs", unit="sample", disable=not progress, leave=False):
            try:
                path, shape = output_path(out, e), sample_shape(e.folder)
            except (OSError, ValueError) as err:
                self.fail(f"{e.split_dir}/{e.task}/{e.sample_id}", err)
                continue
            if is_done(path, shape):
                self.info["skipped"] += 1
            else:
                jobs.append(Job(e, path, sample_seed(e.task, e.sample_id, seed), shape))
        return jobs

    def requests(self, batch: list[Job]) -> tuple[list[Job], list[Request]]:
        """The batch's requests (prompt and first frame read now); unreadable samples are failed."""
        ready, requests = [], []
        for j in batch:
            try:
                requests.append(
                    Request(read_prompt(j.entry.folder), read_first_frame(j.entry.folder), *j.shape, j.seed)
                )
                ready.append(j)
            except (OSError, ValueError) as err:
                self.fail(j.key, err)
        return ready, requests

    def write(self, job: Job, request: Request, video: np.ndarray, timing: dict) -> None:
        """Write one output atomically (resized first if the backend returned another shape) and record it."""
        notes = [n for n in [self.generator.note(request)] if n]
        video = np.asarray(video)
        if video.dtype != np.uint8 or video.shape != (*job.shape, 3):
            notes.append(f"backend returned {video.dtype} {video.shape}; resized to {job.shape}")
            video = prepare_frames(video, job.shape[1:], job.shape[0])
        t0 = time.perf_counter()
        _remove_stale_temps(job.out)
        try:
            write_mp4(job.out, video)
        except (OSError, ValueError) as err:
            self.fail(job.key, err)
            return
        frames, height, width = job.shape
        self.samples[job.key] = {
            "seed": job.seed,
            "frames": frames,
            "height": height,
            "width": width,
            **timing,
            "write_seconds": round(time.perf_counter() - t0, 4),
            "notes": notes,
            "at": _now(),
        }
        self.info["generated"] += 1
        for n in notes:
            if n not in self.notes_seen:
                self.notes_seen.add(n)
                tqdm.write(f"note: {n}")


def run_bench(
    data: str | os.PathLike,
    out: str | os.PathLike,
    generator: Generator,
    *,
    split: str = "all",
    tasks: list[str] | None = None,
    limit: int | None = None,
    shard: tuple[int, int] = (0, 1),
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Generate every selected sample not already done; returns this invocation's summary.

    Per-sample read or write errors are recorded (``error`` in the record) and the run goes on; an error
    of the generator itself stops the run, with everything written so far kept and recorded.
    """
    t_start = time.perf_counter()
    data, out = Path(data), Path(out)
    entries = select(list_samples(data), split, tasks, limit, shard)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(
        out,
        shard,
        generator,
        seed,
        {
            "data": str(data),
            "split": split,
            "tasks": tasks,
            "limit": limit,
            "shard": f"{shard[0]}/{shard[1]}",
            "selected": len(entries),
        },
    )
    jobs = run.plan(entries, out, seed, progress)
    batches = _batches(jobs, generator.batch_size)
    tqdm.write(
        f"bench run: {len(entries)} samples selected (shard {shard[0]}/{shard[1]}), {run.info['skipped']} done, "
        f"{len(jobs)} to generate in {len(batches)} batches of up to {generator.batch_size} "
        f"({generator.name}; {', '.join(f'{k} {v}' for k, v in generator.layout.items())})"
    )
    for option in getattr(generator, "ignored", []):
        tqdm.write(f"warning: the {generator.name} backend takes no {option!r} option; it is ignored", file=sys.stderr)
    run.save()
    shapes_seen: set[tuple[int, int, int]] = set()
    bar = tqdm(
        total=len(entries), initial=len(entries) - len(jobs), desc="generate", unit="sample", disable=not progress
    )
    try:
        for b, batch in enumerate(batches):
            ready, requests = run.requests(batch)
            if ready:
                t0 = time.perf_counter()
                videos = generator.generate(requests)
                seconds = time.perf_counter() - t0
                if len(videos) != len(requests):
                    raise RuntimeError(f"{generator.name} returned {len(videos)} videos for {len(requests)} requests")
                timing = {
                    "seconds": round(seconds / len(ready), 4),
                    "batch": b,
                    "batch_size": len(ready),
                    "batch_seconds": round(seconds, 4),
                    "first_batch_of_shape": batch[0].shape not in shapes_seen,
                }
                shapes_seen.add(batch[0].shape)
                for j, q, video in zip(ready, requests, videos, strict=True):
                    run.write(j, q, video, timing)
                run.save()
            bar.update(len(batch))
    finally:
        bar.close()
        run.info.update(finished=_now(), seconds=round(time.perf_counter() - t_start, 3))
        run.save()
    return {**run.info, "record": str(run.path)}
