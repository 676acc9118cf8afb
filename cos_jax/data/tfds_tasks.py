"""TFDS builders (no TensorFlow needed: array_record files read back as random-access data sources).

``CosTasks`` generates the procedural tasks with deterministic seeds into four splits:
``train`` (in-domain tasks, difficulties 1–2, train parameter hashes), ``id_test`` (in-domain tasks,
difficulty 2, test hashes), ``ood_test`` (the four held-out tasks, difficulty 2) and ``param_ood_test``
(in-domain tasks at the difficulty-3 stress level). ``VbvrFolder`` reads a local VBVR-Bench-Data /
VBVR-Dataset style folder (``manual_dir``) into the same features.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from cos_jax.tasks import ID_TASKS, OOD_TASKS, TASKS, get_task
from cos_jax.tasks.base import PARAM_OOD_DIFFICULTY, check_video_shape, prepare_frames

TASK_NAMES = tuple(TASKS)


@dataclasses.dataclass
class CosTasksConfig(tfds.core.BuilderConfig):
    resolution: int = 32
    num_frames: int = 17
    train_per_task: int = 200
    test_per_task: int = 20


def features(resolution: int, num_frames: int) -> tfds.features.FeaturesDict:
    """The shared example features: frames as uint8 tensors, prompt and metadata as text."""
    return tfds.features.FeaturesDict(
        {
            "first_frame": tfds.features.Tensor(shape=(resolution, resolution, 3), dtype=np.uint8),
            "video": tfds.features.Tensor(shape=(num_frames, resolution, resolution, 3), dtype=np.uint8),
            "prompt": tfds.features.Text(),
            "task": tfds.features.Text(),
            "task_id": tfds.features.Scalar(dtype=np.int64),
            "category": tfds.features.Text(),
            "meta_json": tfds.features.Text(),
            "param_hash": tfds.features.Text(),
        }
    )


def split_plan(split: str, cfg: CosTasksConfig) -> list[tuple[str, str, int, int]]:
    """(task, hash split, index, difficulty) for every example of a split, in a fixed order."""
    if split == "train":
        return [(t, "train", i, 1 + i % 2) for t in ID_TASKS for i in range(cfg.train_per_task)]
    tasks = {"id_test": ID_TASKS, "ood_test": OOD_TASKS, "param_ood_test": ID_TASKS}[split]
    level = PARAM_OOD_DIFFICULTY if split == "param_ood_test" else 2
    return [(t, "test", i, level) for t in tasks for i in range(cfg.test_per_task)]


class CosTasks(tfds.core.GeneratorBasedBuilder):
    """The twelve cos-jax procedural reasoning tasks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Twelve tasks, four splits."}  # noqa: RUF012 (TFDS class attribute)
    BUILDER_CONFIGS = [  # noqa: RUF012
        CosTasksConfig(name=f"r{r}_f{f}", resolution=r, num_frames=f) for r in (32, 64) for f in (9, 17, 33)
    ]
    DEFAULT_CONFIG_NAME = "r32_f17"

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        check_video_shape(cfg.resolution, cfg.num_frames)
        return self.dataset_info_from_configs(features=features(cfg.resolution, cfg.num_frames))

    def _split_generators(self, dl_manager):
        return {s: self._generate_examples(s) for s in ("train", "id_test", "ood_test", "param_ood_test")}

    def _generate_examples(self, split: str):
        cfg = self.builder_config
        for name, hash_split, index, difficulty in split_plan(split, cfg):
            s = get_task(name).generate_for_split(hash_split, index, difficulty, cfg.resolution, cfg.num_frames)
            yield (
                f"{name}/{index:06d}",
                {
                    "first_frame": s.first_frame,
                    "video": s.video,
                    "prompt": s.prompt,
                    "task": name,
                    "task_id": TASK_NAMES.index(name),
                    "category": s.meta["category"],
                    "meta_json": json.dumps(s.meta),
                    "param_hash": s.meta["param_hash"],
                },
            )


@dataclasses.dataclass
class VbvrFolderConfig(tfds.core.BuilderConfig):
    resolution: int = 64
    num_frames: int = 17


class VbvrFolder(tfds.core.GeneratorBasedBuilder):
    """A local VBVR-Bench-Data or VBVR-Dataset folder (``<split>/<task>/<sample>/``) in the same features.

    Put the downloaded folder at ``manual_dir``. Videos are resized (box filter) and resampled evenly to
    the config's resolution and frame count. Tasks outside cos-jax get ``task_id`` -1 and empty metadata.
    """

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download VBVR-Bench-Data (or a VBVR-Dataset extract) and pass its folder as manual_dir; it must hold "
        "<split>/<task>/<sample>/{first_frame.png, ground_truth.mp4, prompt.txt}."
    )
    BUILDER_CONFIGS = [VbvrFolderConfig(name="r64_f17", resolution=64, num_frames=17)]  # noqa: RUF012

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        return self.dataset_info_from_configs(features=features(cfg.resolution, cfg.num_frames))

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        splits = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if not splits:
            raise FileNotFoundError(f"no split folders under {root}; {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        return {tfds_split_name(s): self._generate_examples(root / s) for s in splits}

    def _generate_examples(self, split_dir: Path):
        from cos_jax.tasks.video_io import read_video

        cfg = self.builder_config
        for folder in sorted(p.parent for p in split_dir.glob("*/*/ground_truth.mp4")):
            task = folder.parent.name
            meta_path = folder / "meta.json"
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
            video = prepare_frames(read_video(folder / "ground_truth.mp4"), cfg.resolution, cfg.num_frames)
            name = meta.get("task", task)
            yield (
                f"{task}/{folder.name}",
                {
                    "first_frame": video[0],
                    "video": video,
                    "prompt": (folder / "prompt.txt").read_text().strip() if (folder / "prompt.txt").is_file() else "",
                    "task": name,
                    "task_id": TASK_NAMES.index(name) if name in TASK_NAMES else -1,
                    "category": meta.get("category", ""),
                    "meta_json": json.dumps(meta),
                    "param_hash": meta.get("param_hash", ""),
                },
            )


def tfds_split_name(folder: str) -> str:
    """A folder name as a TFDS split name (letters, digits and underscores)."""
    return "".join(c if c.isalnum() else "_" for c in folder).strip("_").lower()


def build(
    data_dir: str | Path,
    resolution: int = 32,
    num_frames: int = 17,
    train_per_task: int = 200,
    test_per_task: int = 20,
) -> CosTasks:
    """Generate (once) and return the builder for a configuration; read with ``builder.as_data_source``."""
    name = f"r{resolution}_f{num_frames}_n{train_per_task}_{test_per_task}"
    cfg = CosTasksConfig(
        name=name, resolution=resolution, num_frames=num_frames, train_per_task=train_per_task,
        test_per_task=test_per_task,
    )  # fmt: skip
    builder = CosTasks(config=cfg, data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare()
    return builder
