"""Paired problems for layer swaps (same prompt, different right answer, either answer showable on either
problem) and object masks."""

import numpy as np
import pytest

from cos_jax.tasks import TASKS, get_task


@pytest.mark.parametrize(("name", "difficulty"), [("select_next", 2), ("tictactoe", 1), ("tictactoe", 2),
                                                  ("maze", 1), ("maze", 2)])  # fmt: skip
def test_pairs_differ_in_the_answer_and_cross_score(name, difficulty):
    task = get_task(name)
    for index in range(4):
        a, b = task.pair_for_split("test", index, difficulty, 32, 17)
        assert a.prompt == b.prompt and a.meta["params"] != b.meta["params"]
        task.check_difficulty(b.meta["params"], b.meta["solution"], difficulty)
        b_on_a = task.cross_meta(a.meta, b.meta)
        assert task.score(a.video, a.meta).success and task.score(b.video, b.meta).success
        assert not task.score(a.video, b_on_a).success  # A's answer is not B's
        shown = task.render(b_on_a)  # B's answer drawn on (what the scorer reads of) A's problem
        assert task.score(shown, b_on_a).success and not task.score(shown, a.meta).success
    again = task.pair_for_split("test", index, difficulty, 32, 17)  # deterministic in the index
    assert [s.meta for s in again] == [a.meta, b.meta] and np.array_equal(again[1].video, b.video)


def test_tasks_without_pairs_say_so():
    assert {n for n, t in TASKS.items() if t.has_pairs} == {"select_next", "tictactoe", "tictactoe_two", "maze"}
    with pytest.raises(NotImplementedError, match="majority_colour has no paired problems"):
        get_task("majority_colour").pair(0)


@pytest.mark.parametrize("name", ["select_next", "tictactoe", "maze", "majority_colour"])
def test_object_mask_covers_the_objects_not_the_background(name):
    sample = get_task(name).generate_for_split("test", 0, 1, 32, 17)
    mask = get_task(name).object_mask(sample)
    assert mask.shape == sample.video.shape[:3] and mask.dtype == bool
    assert 0.01 < mask[0].mean() < 0.9
    assert (sample.video[0][~mask[0]] >= 245).all()
