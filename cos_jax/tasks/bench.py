"""VBVR-Bench folder layout and an evaluator over a folder of generated videos.

Bench:  ``<root>/<split>/<task>/<sample>/{first_frame.png, final_frame.png, ground_truth.mp4, prompt.txt, meta.json}``
        (split folders: ours ``In-Domain`` / ``Out-of-Domain``; VBVR-Bench-Data's ``In-Domain_50`` / ...)
Videos: ``<videos>/<split>/<task>/<sample>.mp4`` (a ``.gif`` is read when there is no mp4).
Aggregation follows VBVR-Bench's ``run_evaluation.py`` (sample means per task, split, category and overall),
except that a missing or unreadable video counts as 0 instead of being skipped.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cos_jax.arrays_io import atomic_write
from cos_jax.tasks import TASKS, get_task
from cos_jax.tasks.base import CATEGORIES, Sample
from cos_jax.tasks.video_io import probe_video, read_png, read_video, write_gif, write_mp4, write_png

SPLIT_DIRS = {"id": "In-Domain", "ood": "Out-of-Domain"}
SPLIT_NAMES = {v: k for k, v in SPLIT_DIRS.items()}
# a split folder: ours ("In-Domain") or VBVR-Bench-Data's ("In-Domain_50"); group 1 names the split
_SPLIT_FOLDER = re.compile(r"^(In-Domain|Out-of-Domain)(?:_\d+)?$")


@dataclass(frozen=True)
class BenchEntry:
    split_dir: str
    task: str
    sample_id: str
    folder: Path


def sample_id(index: int) -> str:
    return f"{index:05d}"


def write_sample(folder: str | os.PathLike, sample: Sample, gif: bool = False) -> Path:
    """One sample folder in the VBVR-Bench layout plus our meta.json (each file written atomically)."""
    folder = Path(folder)
    write_png(folder / "first_frame.png", sample.first_frame)
    write_png(folder / "final_frame.png", sample.final_frame)
    write_mp4(folder / "ground_truth.mp4", sample.video)
    if gif:
        write_gif(folder / "ground_truth.gif", sample.video)
    atomic_write(folder / "prompt.txt", lambda tmp: Path(tmp).write_text(sample.prompt + "\n"))
    atomic_write(folder / "meta.json", lambda tmp: Path(tmp).write_text(json.dumps(sample.meta, indent=1)))
    return folder


def write_bench(
    root: str | os.PathLike,
    tasks: list[str],
    n: int,
    difficulty: int = 2,
    resolution: int = 64,
    num_frames: int = 17,
    split: str = "test",
    gif: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Generate ``n`` samples of each task into the bench layout; the data split picks disjoint hashes."""
    jobs = [(get_task(name), i) for name in tasks for i in range(n)]
    out = []
    for task, i in tqdm(jobs, desc="generate", unit="sample", disable=not progress):
        s = task.generate_for_split(split, i, difficulty, resolution, num_frames)
        out.append(write_sample(Path(root) / SPLIT_DIRS[task.split] / task.name / sample_id(i), s, gif))
    return out


def list_bench(root: str | os.PathLike) -> list[BenchEntry]:
    """Every sample folder with a meta.json (our tasks); raises if the folder holds none."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"bench folder {root} does not exist; create one with `cos-jax tasks generate`")
    entries = [
        BenchEntry(m.parent.parent.parent.name, m.parent.parent.name, m.parent.name, m.parent)
        for m in sorted(root.glob("*/*/*/meta.json"))
    ]
    if not entries:
        raise FileNotFoundError(f"no <split>/<task>/<sample>/meta.json under {root}; is this a cos-jax bench?")
    return entries


def split_of(folder_name: str) -> str | None:
    """'id' / 'ood' for a split folder name (``In-Domain``, ``Out-of-Domain_50``, ...), else None."""
    m = _SPLIT_FOLDER.match(folder_name)
    return SPLIT_NAMES[m.group(1)] if m else None


def list_samples(root: str | os.PathLike) -> list[BenchEntry]:
    """Every ``<split>/<task>/<sample>/first_frame.png`` under a bench root, ours or VBVR-Bench-Data's.

    meta.json is optional (VBVR-Bench-Data has none); split folders are recognised by name (`split_of`).
    Raises FileNotFoundError saying what the root should hold when it holds no sample.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"bench folder {root} does not exist")
    splits = sorted(d for d in root.iterdir() if d.is_dir() and split_of(d.name))
    entries = [
        BenchEntry(split.name, f.parent.parent.name, f.parent.name, f.parent)
        for split in splits
        for f in sorted(split.glob("*/*/first_frame.png"))
    ]
    if not entries:
        hint = ""
        if split_of(root.name) or any(root.glob("*/first_frame.png")) or any(root.glob("*/*/first_frame.png")):
            hint = "; it looks like a split or task folder: pass the folder above it"
        raise FileNotFoundError(
            f"no samples under {root}: expected In-Domain[_50]/ or Out-of-Domain[_50]/ folders holding "
            f"<task>/<sample>/first_frame.png (as VBVR-Bench-Data or `cos-jax tasks generate` write them){hint}"
        )
    return entries


def read_prompt(folder: str | os.PathLike) -> str:
    path = Path(folder) / "prompt.txt"
    if not path.is_file():
        raise FileNotFoundError(f"sample {folder} has no prompt.txt")
    return path.read_text().strip()


def sample_shape(folder: str | os.PathLike) -> tuple[int, int, int]:
    """(frames, height, width) of a sample's ground truth: from meta.json if it has them, else the mp4."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if "num_frames" in meta and "resolution" in meta:
            return int(meta["num_frames"]), int(meta["resolution"]), int(meta["resolution"])
    if not (folder / "ground_truth.mp4").is_file():
        raise FileNotFoundError(f"sample {folder} has neither ground_truth.mp4 nor a meta.json with its size")
    return probe_video(folder / "ground_truth.mp4")


def read_sample(folder: str | os.PathLike) -> Sample:
    """Load a sample folder back (video from ground_truth.mp4)."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    video = read_video(folder / "ground_truth.mp4")
    return Sample(meta["task"], read_prompt(folder), video, meta)


def read_first_frame(folder: str | os.PathLike) -> np.ndarray:
    return read_png(Path(folder) / "first_frame.png")


def find_video(videos: Path, e: BenchEntry) -> Path | None:
    for ext in (".mp4", ".gif"):
        p = videos / e.split_dir / e.task / f"{e.sample_id}{ext}"
        if p.is_file():
            return p
    return None


def _summary(rows: list[dict]) -> dict:
    def stats(rs):
        return {
            "mean_score": float(np.mean([r["score"] for r in rs])) if rs else 0.0,
            "success_rate": float(np.mean([r["success"] for r in rs])) if rs else 0.0,
            "num_samples": len(rs),
        }

    by_task, by_cat = defaultdict(list), defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
        by_cat[r["category"]].append(r)
    return {
        **stats(rows),
        "by_task": {k: stats(v) for k, v in sorted(by_task.items())},
        "by_category": {k: stats(by_cat[k]) for k in CATEGORIES if k in by_cat},
    }


def evaluate(videos: str | os.PathLike, bench: str | os.PathLike, progress: bool = True) -> dict:
    """Score every bench sample's generated video; missing or unreadable videos score 0 with an error."""
    videos = Path(videos)
    if not videos.is_dir():
        raise FileNotFoundError(f"videos folder {videos} does not exist")
    rows = []
    for e in tqdm(list_bench(bench), desc="score", unit="video", disable=not progress):
        meta = json.loads((e.folder / "meta.json").read_text())
        row = {"split": e.split_dir, "task": e.task, "sample": e.sample_id, "category": meta["category"]}
        path = find_video(videos, e)
        try:
            if path is None:
                raise FileNotFoundError(f"missing {e.split_dir}/{e.task}/{e.sample_id}.mp4")
            r = get_task(meta["task"]).score(read_video(path), meta)
            row.update(score=r.score, success=r.success, subscores=r.subscores, error=None)
        except (OSError, ValueError) as err:
            row.update(score=0.0, success=False, subscores={}, error=str(err))
        rows.append(row)
    summary = {
        split: _summary([r for r in rows if r["split"] == split]) for split in sorted({r["split"] for r in rows})
    }
    summary["overall"] = _summary(rows)
    return {"summary": summary, "samples": rows}


def format_report(report: dict) -> str:
    """A text table: per task, then overall / split / category means (score and success rate)."""
    s = report["summary"]
    lines = [f"{'split':<14} {'task':<16} {'category':<15} {'n':>4} {'score':>7} {'success':>8}"]
    lines.append("-" * len(lines[0]))
    for split in (k for k in s if k != "overall"):
        for task, st in s[split]["by_task"].items():
            cat = TASKS[task].category if task in TASKS else "?"
            lines.append(
                f"{split:<14} {task:<16} {cat:<15} {st['num_samples']:>4} {st['mean_score']:>7.3f} "
                f"{st['success_rate']:>8.3f}"
            )
    lines.append("-" * len(lines[0]))
    for split in s:
        lines.append(f"{split:<47} {s[split]['num_samples']:>4} {s[split]['mean_score']:>7.3f} "
                     f"{s[split]['success_rate']:>8.3f}")  # fmt: skip
        for cat, st in s[split]["by_category"].items():
            label = f"{split}-{cat[:5]}."
            lines.append(f"  {label:<45} {st['num_samples']:>4} {st['mean_score']:>7.3f} {st['success_rate']:>8.3f}")
    missing = sum(1 for r in report["samples"] if r["error"])
    lines.append(f"\n{missing} of {len(report['samples'])} videos missing or unreadable (scored 0)")
    return "\n".join(lines)


def write_report(path: str | os.PathLike, report: dict) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1)))
