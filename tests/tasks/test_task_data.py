"""TFDS builder (array_record, no TensorFlow) splits and features; grain batches, reproducibility, sharding."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")
pytest.importorskip("grain")

from cos_jax.data.loader import make_loader, prompt_tokens, take
from cos_jax.data.tfds_tasks import TASK_NAMES, build
from cos_jax.tasks import ID_TASKS, OOD_TASKS
from cos_jax.tasks.base import hash_split


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    return build(tmp_path_factory.mktemp("tfds"), resolution=32, num_frames=9, train_per_task=3, test_per_task=2)


def test_splits_and_features(builder):
    splits = builder.info.splits
    assert {k: splits[k].num_examples for k in splits} == {
        "train": 3 * len(ID_TASKS), "id_test": 2 * len(ID_TASKS), "ood_test": 2 * len(OOD_TASKS),
        "param_ood_test": 2 * len(ID_TASKS)}  # fmt: skip
    hashes = {}
    for split in splits:
        src = builder.as_data_source(split)
        tasks = set()
        for i in range(len(src)):
            ex = src[i]
            assert ex["video"].shape == (9, 32, 32, 3) and ex["video"].dtype == np.uint8
            assert np.array_equal(ex["first_frame"], ex["video"][0])
            meta = json.loads(ex["meta_json"])
            assert meta["param_hash"] == ex["param_hash"].decode() and TASK_NAMES[ex["task_id"]] == meta["task"]
            tasks.add(meta["task"])
            hashes.setdefault(split, set()).add(meta["param_hash"])
            if split == "param_ood_test":
                assert meta["difficulty"] == 3
        assert tasks == set(OOD_TASKS if split == "ood_test" else ID_TASKS)
    assert not hashes["train"] & (hashes["id_test"] | hashes["param_ood_test"])
    assert all(hash_split(h) == "train" for h in hashes["train"])


def test_grain_batches(builder):
    src = builder.as_data_source("train")
    a = list(take(make_loader(src, batch_size=4, seed=7, shard_index=0, shard_count=1), 3))
    b = list(take(make_loader(src, batch_size=4, seed=7, shard_index=0, shard_count=1), 3))
    c = list(take(make_loader(src, batch_size=4, seed=8, shard_index=0, shard_count=1), 3))
    x = a[0]
    assert x["video"].shape == (4, 9, 32, 32, 3) and x["first_frame"].shape == (4, 32, 32, 3)
    assert x["prompt_tokens"].shape == x["prompt_mask"].shape == (4, 384) and x["task_id"].shape == (4,)
    assert all(np.array_equal(p["video"], q["video"]) for p, q in zip(a, b, strict=True))
    assert any(not np.array_equal(p["task_id"], q["task_id"]) for p, q in zip(a, c, strict=True))
    # two processes see disjoint halves of an epoch
    shards = [make_loader(src, 2, seed=1, num_epochs=1, shard_index=i, shard_count=2) for i in range(2)]
    seen = [{bytes(v) for batch in s for v in batch["video"].reshape(2, -1)} for s in shards]
    assert seen[0] and seen[1] and not seen[0] & seen[1]


def test_prompt_tokens():
    t, m = prompt_tokens("ab", 4)
    assert t.tolist() == [98, 99, 0, 0] and m.tolist() == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="batch"):
        make_loader(list(range(3)), batch_size=4, shard_index=0, shard_count=1)


def test_vbvr_folder_builder_reads_a_bench_folder(tmp_path):
    from cos_jax.data.tfds_tasks import VbvrFolder
    from cos_jax.tasks.bench import write_bench

    manual = tmp_path / "manual"
    write_bench(manual, ["clock", "symmetry"], n=2, resolution=64, num_frames=33, progress=False)
    b = VbvrFolder(data_dir=str(tmp_path / "tfds"), file_format="array_record")
    b.download_and_prepare(download_config=__import__("tensorflow_datasets").download.DownloadConfig(
        manual_dir=str(manual)))  # fmt: skip
    assert {k: b.info.splits[k].num_examples for k in b.info.splits} == {"in_domain": 2, "out_of_domain": 2}
    ex = b.as_data_source("in_domain")[0]
    assert (
        ex["video"].shape == (17, 64, 64, 3) and ex["task"] == b"clock" and ex["task_id"] == TASK_NAMES.index("clock")
    )
