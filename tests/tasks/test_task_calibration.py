"""Scorer calibration per task: ground truth succeeds, a still video scores ≈ 0, a plausible wrong answer
fails, and the scores survive an mp4 round trip and a resolution change."""

import numpy as np
import pytest

from cos_jax.tasks import TASKS, still_video
from cos_jax.tasks.video_io import read_video, write_mp4

FRAME_COUNTS = (9, 17, 33)
SEEDS = range(6)


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("name", list(TASKS))
def test_calibration(name, resolution):
    task = TASKS[name]
    for difficulty in (1, 2, 3):
        for seed in SEEDS:
            frames = FRAME_COUNTS[seed % 3]
            s = task.generate(seed, difficulty, resolution, frames)
            gt = task.score(s.video, s.meta)
            assert gt.score >= 0.99 and gt.success, (difficulty, seed, gt)
            still = task.score(still_video(s), s.meta)
            assert still.score <= 0.2 and not still.success, (difficulty, seed, still)
            wrong = task.score(task.wrong_video(s), s.meta)
            assert not wrong.success and wrong.score < 0.99, (difficulty, seed, wrong)


@pytest.mark.parametrize("name", list(TASKS))
def test_mp4_round_trip_keeps_success(name, tmp_path):
    task = TASKS[name]
    for resolution in (32, 64):
        for seed in range(2):
            s = task.generate(seed, 2, resolution, 17)
            path = write_mp4(tmp_path / f"{seed}.mp4", s.video)
            video = read_video(path)
            assert video.shape == s.video.shape
            r = task.score(video, s.meta)
            assert r.success and r.score >= 0.99, (resolution, seed, r)


@pytest.mark.parametrize("name", list(TASKS))
def test_scores_other_resolution_and_frame_count(name):
    """A 128×128, 33-frame rendering of the same problem scores against 64×64, 17-frame metadata."""
    task = TASKS[name]
    big = task.generate(5, 2, 128, 33)
    small = task.generate(5, 2, 64, 17)
    assert big.meta["param_hash"] == small.meta["param_hash"]
    r = task.score(big.video, small.meta)
    assert r.success, r


@pytest.mark.parametrize("name", list(TASKS))
def test_gaussian_noise_keeps_success(name):
    task = TASKS[name]
    rng = np.random.default_rng(0)
    for resolution in (32, 64):
        s = task.generate(1, 2, resolution, 17)
        noisy = np.clip(s.video + rng.normal(0, 6, s.video.shape), 0, 255).astype(np.uint8)
        r = task.score(noisy, s.meta)
        assert r.success and r.score >= 0.99, (resolution, r)


@pytest.mark.parametrize("name", list(TASKS))
def test_degenerate_videos_score_zero(name):
    """Blank, black, random-noise and random-palette videos (after the true frame 0) score ≈ 0."""
    from cos_jax.tasks.palette import RGB

    task = TASKS[name]
    rng = np.random.default_rng(1)
    for resolution in (32, 64):
        for seed in range(3):
            s = task.generate(seed, 2, resolution, 17)
            videos = {
                "white": np.full_like(s.video, 255),
                "black": np.zeros_like(s.video),
                "noise": rng.integers(0, 256, s.video.shape, dtype=np.uint8),
                "palette_noise": RGB.astype(np.uint8)[rng.integers(0, len(RGB), s.video.shape[:3])],
            }
            for kind, v in videos.items():
                v[0] = s.video[0]
                r = task.score(v, s.meta)
                assert r.score <= 0.2 and not r.success, (kind, resolution, seed, r)
