"""Training data for the toy world, generated from the task suite into in-memory arrays.

Generation runs once on host CPUs (a process pool); training then samples batches on device from the
arrays, which is faster than any host pipeline for 32×32 videos.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
from tqdm.auto import tqdm

from cos_jax.wan.text import ByteTokenizer


def _one(job: tuple[str, int, int], resolution: int, frames: int, split: str):
    from cos_jax.tasks import get_task

    name, index, difficulty = job
    sample = get_task(name).generate_for_split(split, index, difficulty, resolution, frames)
    return sample.video, sample.prompt


def task_arrays(
    tasks: list[str],
    per_task: int | dict[str, int],
    resolution: int,
    frames: int,
    text_len: int,
    split: str = "train",
    difficulties: tuple[int, ...] = (1, 2),
    workers: int | None = None,
    start: int = 0,
) -> dict[str, np.ndarray]:
    """{video uint8 [N,T,H,W,3], ids int32 [N,text_len], mask int32, task int32} for `per_task` samples
    of each task (or a count per task; split indices start…, difficulties cycled over the indices)."""
    counts = per_task if isinstance(per_task, dict) else dict.fromkeys(tasks, per_task)
    jobs = [(name, start + i, difficulties[i % len(difficulties)]) for name in tasks for i in range(counts[name])]
    workers = workers or min(len(os.sched_getaffinity(0)), 32)
    fn = partial(_one, resolution=resolution, frames=frames, split=split)
    with ProcessPoolExecutor(workers) as pool:
        results = list(tqdm(pool.map(fn, jobs, chunksize=16), total=len(jobs), desc=f"generating {split} data"))
    ids, mask = ByteTokenizer(text_len)(p for _, p in results)
    return {
        "video": np.stack([v for v, _ in results]),
        "ids": ids,
        "mask": mask,
        "task": np.asarray([tasks.index(name) for name, _, _ in jobs], np.int32),
    }
