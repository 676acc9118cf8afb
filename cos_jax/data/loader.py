"""grain loaders: shuffled, sharded training batches (first frame, prompt tokens, video, task id)."""

from __future__ import annotations

from collections.abc import Iterator

import grain.python as grain
import numpy as np

PROMPT_LEN = 384  # prompts are plain ASCII and shorter than this; longer ones are cut


def prompt_tokens(prompt: str | bytes, length: int = PROMPT_LEN) -> tuple[np.ndarray, np.ndarray]:
    """Byte-level tokens (UTF-8 byte + 1, 0 = padding) and the matching mask, both of shape (length,)."""
    raw = prompt.encode() if isinstance(prompt, str) else bytes(prompt)
    ids = np.frombuffer(raw[:length], dtype=np.uint8).astype(np.int32) + 1
    tokens = np.zeros(length, np.int32)
    tokens[: ids.size] = ids
    return tokens, (tokens > 0).astype(np.int32)


class ToTrainingExample(grain.MapTransform):
    """A stored example → arrays only (uint8 frames, int32 prompt tokens, int32 task id)."""

    def __init__(self, prompt_len: int = PROMPT_LEN):
        self.prompt_len = prompt_len

    def map(self, ex: dict) -> dict:
        tokens, mask = prompt_tokens(ex["prompt"], self.prompt_len)
        return {
            "first_frame": np.asarray(ex["first_frame"], np.uint8),
            "video": np.asarray(ex["video"], np.uint8),
            "prompt_tokens": tokens,
            "prompt_mask": mask,
            "task_id": np.int32(ex["task_id"]),
        }


def make_loader(
    source,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    shard_index: int | None = None,
    shard_count: int | None = None,
    worker_count: int = 0,
    prompt_len: int = PROMPT_LEN,
) -> grain.DataLoader:
    """A grain DataLoader over a random-access source (e.g. ``builder.as_data_source("train")``).

    Each process reads its own shard (defaults: ``jax.process_index()`` of ``jax.process_count()``);
    the order depends only on ``seed``, so a run is reproducible. Incomplete final batches are dropped.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shard_index is None or shard_count is None:
        import jax

        shard_index, shard_count = jax.process_index(), jax.process_count()
    if len(source) < shard_count * batch_size:
        raise ValueError(
            f"{len(source)} examples cannot fill a batch of {batch_size} on each of {shard_count} shards; "
            "generate more examples or lower the batch size"
        )
    sampler = grain.IndexSampler(
        num_records=len(source),
        shard_options=grain.ShardOptions(shard_index=shard_index, shard_count=shard_count, drop_remainder=True),
        shuffle=shuffle,
        num_epochs=num_epochs,
        seed=seed,
    )
    ops = [ToTrainingExample(prompt_len), grain.Batch(batch_size=batch_size, drop_remainder=True)]
    return grain.DataLoader(data_source=source, sampler=sampler, operations=ops, worker_count=worker_count)


def take(loader: grain.DataLoader, n: int) -> Iterator[dict]:
    """The first ``n`` batches of a loader."""
    it = iter(loader)
    for _ in range(n):
        yield next(it)
