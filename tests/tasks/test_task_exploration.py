"""Exploration diagnostics over sequences of intermediate predictions."""

import numpy as np
import pytest

from cos_jax.tasks import TASKS
from cos_jax.tasks.exploration import diagnostics, explore


def test_diagnostics_on_known_activations():
    a = np.array([[0.2, 0.2, 0.0], [0.3, 0.1, 0.0], [0.1, 0.5, 0.0], [0.0, 0.9, 0.0], [0.0, 1.0, 0.0]])
    d = diagnostics(a, correct=[1])
    assert d["breadth"] == [2, 1, 1, 1, 1]
    assert d["switches"] == 1  # candidate 0 leads at steps 0-1, then candidate 1
    assert d["commit_step"] == 2 and d["final_choice"] == 1 and d["committed_correct"]
    assert d["prune_step"] == 1  # two candidates live at step 0 only
    assert d["entropy"][0] > d["entropy"][-1] == 0.0
    assert diagnostics(np.zeros((3, 4)), correct=[0])["commit_step"] is None
    with pytest.raises(ValueError, match="shape"):
        diagnostics(np.zeros(4), correct=[0])


@pytest.mark.parametrize("name", ["maze", "select_next", "tictactoe", "tictactoe_two"])
def test_explore_sees_a_switch_from_wrong_to_right(name):
    task = TASKS[name]
    s = task.generate(3, 2, 64, 17)
    wrong, right = task.wrong_video(s), s.video
    blend = ((wrong[-1].astype(int) + right[-1]) // 2).astype(np.uint8)  # both answers half-drawn
    d = explore(task, [s.video[0], wrong, blend, right, right], s.meta)
    assert d["final_choice"] in task.correct_candidates(s.meta) and d["committed_correct"]
    assert d["switches"] >= 1 and d["commit_step"] >= 2
    assert d["breadth"][0] == 0


def test_palette_decode_is_exact_nearest_colour():
    from cos_jax.tasks import palette

    x = np.random.default_rng(0).integers(0, 256, (20000, 3), dtype=np.uint8)
    assert np.array_equal(palette.decode(x), palette._nearest(x))
    corners = np.stack([palette.rgb(n) for n in palette.NAMES])
    assert palette.decode(corners).tolist() == list(range(len(palette.NAMES)))
    assert palette.decode(np.array([[230, 128, 25]], np.uint8)).tolist() == [palette.UNKNOWN]


@pytest.mark.parametrize("name", ["maze", "select_next", "tictactoe"])
def test_soft_activations_read_superposed_answers(name):
    """An even blend of two answers (what an uncertain x̂0 looks like) reads about half of each softly,
    while the scorers' palette decoding reads neither."""
    task = TASKS[name]
    s = task.generate(3, 2, 64, 17)
    wrong, right = task.wrong_video(s), s.video
    blend = ((wrong.astype(int) + right) // 2).astype(np.uint8)
    problem = s.video[0]
    a_right = task.candidate_activations(right, s.meta, problem)
    a_wrong = task.candidate_activations(wrong, s.meta, problem)
    k, j = int(a_right.argmax()), int(a_wrong.argmax())
    assert k in task.correct_candidates(s.meta) and j != k and a_right[k] > 0.9 and a_wrong[j] > 0.9
    soft, hard = task.candidate_activations(blend, s.meta, problem), task.candidate_activations(blend, s.meta)
    assert 0.35 < soft[k] < 0.65 and 0.35 < soft[j] < 0.65
    assert hard[k] < 0.15 and hard[j] < 0.15
    assert np.allclose(task.candidate_activations(s.video[:1], s.meta, problem), 0.0)  # the problem frame
