"""Task framework: sample and score types, the canvas, the frame timeline, parameter hashes and splits.

Every task draws on a logical 32×32 canvas (``Canvas``): coordinates are in *units*, one unit is
``resolution / 32`` pixels, so a scene and its scorer are the same at 32×32, 64×64 or larger.
Frame 0 is the problem; the solution unfolds over the next three quarters of the frames and the last
quarter holds the final state, so a 33-frame video sampled every other frame is the 17-frame video.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from cos_jax.tasks import palette

LOGICAL = 32
CATEGORIES = ("Abstraction", "Knowledge", "Perception", "Spatiality", "Transformation")
DIFFICULTIES = (1, 2, 3)
#: difficulty 3 lies outside the training range: the parameter-OOD stress level
PARAM_OOD_DIFFICULTY = 3
SPLITS = ("train", "test")
TEST_BUCKETS = 5  # one hash bucket in five belongs to the test split
ATTEMPTS_PER_INDEX = 1000


def check_video_shape(resolution: int, num_frames: int) -> None:
    """Raise ValueError unless the resolution is a multiple of 32 and the frame count is 4n+1 ≥ 9."""
    if resolution < LOGICAL or resolution % LOGICAL:
        raise ValueError(f"resolution={resolution} is not supported; use a multiple of {LOGICAL} (32, 64, 96, ...)")
    if num_frames < 9 or (num_frames - 1) % 4:
        raise ValueError(f"num_frames={num_frames} is not supported; use 4n+1 frames with n >= 2 (9, 17, 33, ...)")


def active_frames(num_frames: int) -> int:
    """Frames over which the solution unfolds (after frame 0): 3/4 of T-1; the rest hold the final state."""
    return 3 * (num_frames - 1) // 4


def progress(t: int, num_frames: int) -> float:
    """Fraction of the solution shown at frame t: 0 at frame 0, 1 from frame ``active_frames(T)`` on."""
    return float(np.clip(t / active_frames(num_frames), 0.0, 1.0))


def param_hash(task: str, params: dict) -> str:
    """First 16 hex digits of SHA-256 over the task name and its (seed-free) parameters."""
    blob = json.dumps({"task": task, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def hash_split(h: str) -> str:
    """The split a parameter hash belongs to (train and test never share a configuration)."""
    return "test" if int(h, 16) % TEST_BUCKETS == 0 else "train"


@lru_cache(maxsize=8)
def _pixel_centres(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of every pixel centre in units (read-only, shared by all canvases of a resolution)."""
    c = (np.arange(resolution) + 0.5) * LOGICAL / resolution
    ys, xs = np.meshgrid(c, c, indexing="ij")
    ys.flags.writeable = xs.flags.writeable = False
    return ys, xs


class Canvas:
    """A white RGB image addressed in logical units (``resolution / 32`` pixels each)."""

    def __init__(self, resolution: int):
        self.res = resolution
        self.u = resolution / LOGICAL
        self.img = np.full((resolution, resolution, 3), 255, dtype=np.uint8)
        self.ys, self.xs = _pixel_centres(resolution)

    def px(self, v: float) -> int:
        return to_px(v, self.u)

    def rect_mask(self, x: float, y: float, w: float, h: float) -> np.ndarray:
        m = np.zeros((self.res, self.res), dtype=bool)
        m[self.px(y) : self.px(y + h), self.px(x) : self.px(x + w)] = True
        return m

    def paint(self, mask: np.ndarray, colour: str, alpha: float = 1.0) -> None:
        """Paint ``colour`` over the mask, blended with weight ``alpha`` (fades)."""
        if alpha <= 0:
            return
        col = palette.rgb(colour).astype(np.float32)
        cur = self.img[mask].astype(np.float32)
        self.img[mask] = np.round((1 - alpha) * cur + alpha * col).astype(np.uint8)

    def rect(self, x: float, y: float, w: float, h: float, colour: str, alpha: float = 1.0) -> None:
        self.paint(self.rect_mask(x, y, w, h), colour, alpha)

    def copy(self) -> Canvas:
        c = Canvas.__new__(Canvas)
        c.res, c.u, c.img, c.ys, c.xs = self.res, self.u, self.img.copy(), self.ys, self.xs
        return c


def to_px(v: float, u: float) -> int:
    """A unit coordinate in pixels (halves round up, the same everywhere)."""
    return int(np.floor(v * u + 0.5))


def region_labels(labels: np.ndarray, res: int, x: float, y: float, w: float, h: float) -> np.ndarray:
    """The labels of a unit-rectangle region (works on (H, W) or (T, H, W) label arrays)."""
    u = res / LOGICAL
    return labels[..., to_px(y, u) : to_px(y + h, u), to_px(x, u) : to_px(x + w, u)]


@dataclass(frozen=True)
class ScoreResult:
    score: float
    success: bool
    subscores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "success": self.success, "subscores": self.subscores}


def weighted(subscores: dict[str, float], weights: dict[str, float], success: bool, gate: bool = True) -> ScoreResult:
    """Combine sub-scores with weights; a closed gate sets the score to 0 (doing nothing scores 0)."""
    total = sum(weights[k] * float(subscores[k]) for k in weights) / sum(weights.values())
    score = float(np.clip(total, 0.0, 1.0)) if gate else 0.0
    subs = {k: round(float(v), 6) for k, v in subscores.items()}
    subs["gate"] = float(gate)
    return ScoreResult(score=score, success=bool(success and gate), subscores=subs)


@dataclass(frozen=True)
class Sample:
    """One generated problem: the ground-truth video (T, H, W, 3) uint8, its prompt and metadata."""

    task: str
    prompt: str
    video: np.ndarray
    meta: dict[str, Any]

    @property
    def first_frame(self) -> np.ndarray:
        return self.video[0]

    @property
    def final_frame(self) -> np.ndarray:
        return self.video[-1]


def prepare_frames(frames: np.ndarray, resolution: int | tuple[int, int], num_frames: int) -> np.ndarray:
    """Bring a video to a resolution (side, or (height, width)) and frame count: box filter when shrinking,
    nearest when enlarging, even temporal resample."""
    from PIL import Image

    v = np.asarray(frames)
    if v.ndim != 4 or v.shape[-1] != 3 or v.shape[0] < 1:
        raise ValueError(f"expected a video of shape (T, H, W, 3), got {v.shape}")
    if v.dtype != np.uint8:
        v = np.clip(np.round(v * 255.0 if v.max() <= 1.0 else v), 0, 255).astype(np.uint8)
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    if v.shape[1:3] != (height, width):
        method = Image.BOX if v.shape[1] * v.shape[2] > height * width else Image.NEAREST
        v = np.stack([np.asarray(Image.fromarray(f).resize((width, height), method)) for f in v])
    if v.shape[0] != num_frames:
        v = v[np.round(np.linspace(0, v.shape[0] - 1, num_frames)).astype(int)]
    return v


class Task(ABC):
    """A procedural reasoning task: deterministic generator + palette-decoding rule-based scorer."""

    name: ClassVar[str]
    category: ClassVar[str]
    split: ClassVar[str]  # "id" or "ood": whether the task generator is held out of training
    vbvr: ClassVar[str]  # the closest VBVR task(s)
    multiple_choice: ClassVar[bool] = False

    @abstractmethod
    def sample_params(self, rng: np.random.Generator, difficulty: int) -> dict:
        """Draw the JSON-serialisable problem parameters at a difficulty level."""

    @abstractmethod
    def solve(self, params: dict) -> dict:
        """The symbolic solution of a problem."""

    @abstractmethod
    def prompt(self, params: dict) -> str:
        """The instruction: states the rule, never the answer."""

    @abstractmethod
    def render(self, meta: dict) -> np.ndarray:
        """The ground-truth video (T, H, W, 3) uint8 from the metadata."""

    @abstractmethod
    def score_frames(self, frames: np.ndarray, meta: dict) -> ScoreResult:
        """Score a video already brought to the task's resolution and frame count."""

    @abstractmethod
    def wrong_video(self, sample: Sample) -> np.ndarray:
        """A plausible wrong answer (wrong choice, path or colour), used to calibrate the scorer."""

    @abstractmethod
    def check_difficulty(self, params: dict, solution: dict, difficulty: int) -> None:
        """Raise AssertionError if a problem lies outside its difficulty level's bounds."""

    # -- generation -------------------------------------------------------------------------------
    def generate(self, seed: int, difficulty: int = 2, resolution: int = 64, num_frames: int = 17) -> Sample:
        """Deterministic in (seed, difficulty): the same problem at every resolution and frame count."""
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty={difficulty} is not one of {DIFFICULTIES}")
        check_video_shape(resolution, num_frames)
        rng = np.random.default_rng([int(seed), difficulty, zlib.crc32(self.name.encode())])
        return self.sample_of(self.sample_params(rng, difficulty), seed, difficulty, resolution, num_frames)

    def sample_of(self, params: dict, seed: int, difficulty: int, resolution: int, num_frames: int) -> Sample:
        """The sample of given problem parameters (solved, rendered, with its metadata)."""
        solution = self.solve(params)
        meta = {
            "task": self.name,
            "category": self.category,
            "task_split": self.split,
            "seed": int(seed),
            "difficulty": difficulty,
            "resolution": resolution,
            "num_frames": num_frames,
            "fps": 16,
            "params": params,
            "solution": solution,
            "param_hash": param_hash(self.name, params),
        }
        meta = json.loads(json.dumps(meta))  # exactly what a meta.json round trip gives back
        return Sample(self.name, self.prompt(params), self.render(meta), meta)

    def generate_for_split(
        self, split: str, index: int, difficulty: int = 2, resolution: int = 64, num_frames: int = 17
    ) -> Sample:
        """Sample ``index`` of a data split: seeds are searched until the parameter hash falls in the split."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {SPLITS}")
        for j in range(ATTEMPTS_PER_INDEX):
            s = self.generate(index * ATTEMPTS_PER_INDEX + j, difficulty, resolution, num_frames)
            if hash_split(s.meta["param_hash"]) == split:
                return s
        raise RuntimeError(f"{self.name}: no {split} configuration in {ATTEMPTS_PER_INDEX} seeds")

    # -- paired problems (layer swaps) and object masks ----------------------------------------------
    def pair_params(self, params: dict, rng: np.random.Generator, difficulty: int) -> dict | None:
        """Parameters of a problem B that shares the prompt with `params` (problem A) and differs only in the
        decisive element, so that its right answer differs and A's problem can show it; None if this A has
        none. Tasks that support layer swaps override it."""
        raise NotImplementedError(f"{self.name} has no paired problems")

    @property
    def has_pairs(self) -> bool:
        return type(self).pair_params is not Task.pair_params

    def pair(
        self, seed: int, difficulty: int = 2, resolution: int = 64, num_frames: int = 17, split: str | None = None
    ):
        """Problems (A, B) whose right answers differ, deterministic in the seed; None if this seed's A has no
        partner (or, given a split, if either problem lies outside it)."""
        check_video_shape(resolution, num_frames)
        params_a = self.sample_params(np.random.default_rng([int(seed), difficulty, zlib.crc32(self.name.encode())]),
                                      difficulty)  # fmt: skip
        rng = np.random.default_rng([int(seed), difficulty, zlib.crc32(f"{self.name}/pair".encode())])
        params_b = self.pair_params(params_a, rng, difficulty)
        if params_b is None:
            return None
        if split is not None and any(hash_split(param_hash(self.name, p)) != split for p in (params_a, params_b)):
            return None
        return tuple(self.sample_of(p, seed, difficulty, resolution, num_frames) for p in (params_a, params_b))

    def pair_for_split(self, split: str, index: int, difficulty: int = 2, resolution: int = 64,
                       num_frames: int = 17) -> tuple[Sample, Sample]:  # fmt: skip
        """Pair ``index`` of a split: both problems' parameter hashes fall in it."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {SPLITS}")
        attempts = ATTEMPTS_PER_INDEX * TEST_BUCKETS
        for j in range(attempts):
            found = self.pair(index * attempts + j, difficulty, resolution, num_frames, split)
            if found:
                return found
        raise RuntimeError(f"{self.name}: no {split} pair in {attempts} seeds")

    def cross_meta(self, problem: dict, answer: dict) -> dict:
        """Metadata that scores a video of `problem`'s first frame against the right answer of `answer` (the
        other problem of a pair): `score(video, cross_meta(a, b)).success` reads "the video gives B's answer"."""
        return {**problem, "solution": answer["solution"]}

    def object_mask(self, sample: Sample) -> np.ndarray:
        """Where the scene's objects are, per frame of the ground truth: bool (T, H, W), every pixel that is not
        white background (the canvas is white; tasks whose objects differ override this)."""
        return np.any(sample.video < 245, axis=-1)

    # -- scoring ----------------------------------------------------------------------------------
    def score(self, frames: np.ndarray, meta: dict) -> ScoreResult:
        """Score any video against a sample's metadata (resized and resampled to the task's format)."""
        if meta.get("task") != self.name:
            raise ValueError(f"metadata is for task {meta.get('task')!r}, not {self.name!r}")
        v = prepare_frames(frames, meta["resolution"], meta["num_frames"])
        return self.score_frames(v, meta)

    # -- exploration (multiple-choice and path tasks) -----------------------------------------------
    def candidate_activations(self, frames: np.ndarray, meta: dict, problem: np.ndarray | None = None) -> np.ndarray:
        """Per-candidate activation in [0, 1] read from a video's last frame (multiple-choice tasks).

        Without ``problem`` it counts pixels decoded to the answer colour (the scorer's reading). Given the
        problem frame it measures how far pixels moved from it toward that colour (`palette.presence`),
        which also reads candidates that an x̂0 holds superposed at partial strength.
        """
        raise NotImplementedError(f"{self.name} has no candidate answers")

    def correct_candidates(self, meta: dict) -> tuple[int, ...]:
        """Indices of the candidates that are right answers (several where a puzzle has several)."""
        raise NotImplementedError(f"{self.name} has no candidate answers")


def still_video(sample: Sample) -> np.ndarray:
    """Frame 0 repeated: the "do nothing" baseline."""
    return np.repeat(sample.video[:1], sample.video.shape[0], axis=0)
