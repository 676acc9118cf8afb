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
    """`per_task` samples of each task (or a count per task; split indices start…, difficulties cycled over the indices)
    as {video uint8 [N,T,H,W,3], prompt int32 [N], task int32 [N], prompt_ids / prompt_mask [U,text_len]}
    (see `prompt_table`)."""
    counts = per_task if isinstance(per_task, dict) else dict.fromkeys(tasks, per_task)
    jobs = [(name, start + i, difficulties[i % len(difficulties)]) for name in tasks for i in range(counts[name])]
    workers = workers or min(len(os.sched_getaffinity(0)), 32)
    fn = partial(_one, resolution=resolution, frames=frames, split=split)
    with ProcessPoolExecutor(workers) as pool:
        results = list(tqdm(pool.map(fn, jobs, chunksize=16), total=len(jobs), desc=f"generating {split} data"))
    table, prompt = prompt_table([p for _, p in results], text_len)
    return {
        "video": np.stack([v for v, _ in results]),
        "prompt": prompt,
        "task": np.asarray([tasks.index(name) for name, _, _ in jobs], np.int32),
        **table,
    }


def prompt_table(prompts: list[str], text_len: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The distinct prompts as token rows ({prompt_ids, prompt_mask} [U, text_len], row 0 the empty prompt
    used for CFG dropout) and each sample's row index [N]. The tasks have few distinct prompts, so
    training encodes the table once per step instead of one copy per sample."""
    rows = {"": 0}
    index = np.asarray([rows.setdefault(p, len(rows)) for p in prompts], np.int32)
    ids, mask = ByteTokenizer(text_len)(list(rows))
    return {"prompt_ids": ids, "prompt_mask": mask}, index
