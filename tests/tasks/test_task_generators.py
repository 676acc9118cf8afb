"""Generators: determinism, difficulty bounds, split hashes, categories and the 8 + 4 task split."""

import ast
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import cos_jax
from cos_jax.tasks import CATEGORIES, ID_TASKS, OOD_TASKS, TASKS, get_task
from cos_jax.tasks.base import hash_split
from cos_jax.tasks.tictactoe import positions, winning_moves


@pytest.mark.parametrize("name", list(TASKS))
def test_deterministic(name):
    task = TASKS[name]
    a, b = task.generate(11, 2, 32, 9), task.generate(11, 2, 32, 9)
    assert np.array_equal(a.video, b.video) and a.meta == b.meta and a.prompt == b.prompt
    c = task.generate(12, 2, 32, 9)
    assert c.meta["param_hash"] != a.meta["param_hash"] or name in ("clock",)
    assert a.video.shape == (9, 32, 32, 3) and a.video.dtype == np.uint8
    json.dumps(a.meta)  # metadata is JSON


@pytest.mark.parametrize("name", list(TASKS))
def test_difficulty_bounds(name):
    task = TASKS[name]
    for difficulty in (1, 2, 3):
        for seed in range(25):
            s = task.generate(seed, difficulty, 32, 9)
            task.check_difficulty(s.meta["params"], s.meta["solution"], difficulty)


def test_tictactoe_positions_have_exactly_one_win():
    assert len(positions()) > 100
    for board in positions():
        assert len(winning_moves(board, 1)) == 1 and board.count(1) == board.count(2)


def test_tictactoe_two_draws_either_win_and_scores_both_right():
    task = TASKS["tictactoe_two"]
    assert len(positions(2)) > 100 and all(len(winning_moves(b, 1)) == 2 for b in positions(2))
    train = [task.generate_for_split("train", i, 2, 32, 9).meta for i in range(200)]
    first = np.mean([task.drawn_cell(m) == m["solution"]["win_cells"][0] for m in train])
    assert 0.4 < first < 0.6  # training videos show both answers about equally often
    s = task.generate(5, 2, 32, 9)
    answers = [task._video(s.meta, cell) for cell in s.meta["solution"]["win_cells"]]
    assert all(task.score(v, s.meta).success for v in answers)  # marking either winning cell succeeds
    assert not task.score(np.minimum(*answers), s.meta).success  # marking both is not an answer
    assert not task.score(task.wrong_video(s), s.meta).success


def test_maze_two_has_two_shortest_routes_draws_either_and_scores_both_right():
    from cos_jax.tasks.maze import neighbours_fn
    from cos_jax.tasks.maze_two import shortest_routes

    task = TASKS["maze_two"]
    train = [task.generate_for_split("train", i, 1, 32, 9).meta for i in range(200)]
    first = np.mean([task.drawn_route(m) == m["solution"]["routes"][0] for m in train])
    assert 0.4 < first < 0.6  # training videos take both routes about equally often
    for m in train[:20]:
        p, routes = m["params"], m["solution"]["routes"]
        assert len(routes) == 2 and len(routes[0]) == len(routes[1]) and routes[0] != routes[1]
        nb = neighbours_fn(p["lattice"])
        for route in routes:  # each is a legal walk from the start to the goal
            assert route[0] == p["start"] and route[-1] == p["goal"]
            assert all(tuple(b) in set(nb(tuple(a))) for a, b in itertools.pairwise(route))
        assert len(shortest_routes(p["lattice"], tuple(p["start"]), tuple(p["goal"]))) == 2
    s = task.generate(5, 1, 32, 9)
    answers = [task._video(s.meta, [tuple(c) for c in r]) for r in s.meta["solution"]["routes"]]
    assert all(task.score(v, s.meta).success for v in answers)  # either route succeeds
    assert not task.score(np.minimum(*answers), s.meta).success  # both trails at once is not an answer
    assert not task.score(task.wrong_video(s), s.meta).success
    activations = [task.candidate_activations(v, s.meta)[:2] for v in answers]
    assert activations[0].tolist() == [1.0, 0.0] and activations[1].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("name", list(TASKS))
def test_train_test_hashes_disjoint(name):
    task = TASKS[name]
    train = {task.generate_for_split("train", i, 2, 32, 9).meta["param_hash"] for i in range(30)}
    test = {task.generate_for_split("test", i, 2, 32, 9).meta["param_hash"] for i in range(10)}
    assert train and test and not train & test
    assert all(hash_split(h) == "train" for h in train) and all(hash_split(h) == "test" for h in test)


def test_split_and_categories():
    assert len(TASKS) == 14 and len(ID_TASKS) == 10 and len(OOD_TASKS) == 4
    assert {TASKS[n].category for n in TASKS} == set(CATEGORIES)
    ood_categories = [TASKS[n].category for n in OOD_TASKS]
    assert len(set(ood_categories)) == 4  # one held-out task per category (Knowledge keeps all three)


def test_bad_inputs_name_the_fix():
    with pytest.raises(KeyError, match="choose from"):
        get_task("sudoku")
    task = TASKS["maze"]
    with pytest.raises(ValueError, match="multiple of 32"):
        task.generate(0, 2, 48, 9)
    with pytest.raises(ValueError, match="4n\\+1"):
        task.generate(0, 2, 32, 16)
    with pytest.raises(ValueError, match="difficulty"):
        task.generate(0, 7, 32, 9)
    s = task.generate(0, 2, 32, 9)
    with pytest.raises(ValueError, match="not 'clock'"):
        TASKS["clock"].score(s.video, s.meta)
    with pytest.raises(ValueError, match="shape"):
        task.score(s.video[0], s.meta)


def test_tasks_and_data_do_not_import_the_model_stack():
    """Static check of every import in cos_jax/tasks and cos_jax/data (the packages stand beside the model).

    (``import cos_jax`` itself loads ``cos_jax.wan`` through the top-level ``__init__``; that is not checked.)
    """
    root = Path(cos_jax.__file__).parent
    forbidden = ("cos_jax.wan", "cos_jax.sampling", "cos_jax.probes")
    files = [*sorted((root / "tasks").glob("*.py")), *sorted((root / "data").glob("*.py"))]
    assert len(files) > 10
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            bad = [n for n in names if n.startswith(forbidden) or n in ("cos_jax.wan", "cos_jax.sampling")]
            assert not bad, f"{f.name} imports {bad}"
