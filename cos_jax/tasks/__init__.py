"""Procedural reasoning tasks: deterministic generators, palette-decoding rule-based scorers, VBVR-Bench I/O.

Never imports the model stack (``cos_jax.wan``, ``cos_jax.sampling``, ``cos_jax.probes``).
"""

from __future__ import annotations

from cos_jax.tasks.analogy import Analogy
from cos_jax.tasks.base import CATEGORIES, DIFFICULTIES, PARAM_OOD_DIFFICULTY, Sample, ScoreResult, Task, still_video
from cos_jax.tasks.bounce import Bounce
from cos_jax.tasks.clock import Clock
from cos_jax.tasks.counting import Counting
from cos_jax.tasks.majority import MajorityColour
from cos_jax.tasks.maze import Maze
from cos_jax.tasks.maze_two import MazeTwo
from cos_jax.tasks.permanence import Permanence
from cos_jax.tasks.rotation import Rotation
from cos_jax.tasks.select_next import SelectNext
from cos_jax.tasks.symmetry import Symmetry
from cos_jax.tasks.tictactoe import TicTacToe, TicTacToeTwo
from cos_jax.tasks.waypoints import Waypoints

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Maze(),
        MazeTwo(),
        Waypoints(),
        MajorityColour(),
        Counting(),
        SelectNext(),
        Symmetry(),
        Analogy(),
        Permanence(),
        Rotation(),
        Bounce(),
        Clock(),
        TicTacToe(),
        TicTacToeTwo(),
    )
}
ID_TASKS = tuple(n for n, t in TASKS.items() if t.split == "id")
OOD_TASKS = tuple(n for n, t in TASKS.items() if t.split == "ood")


def get_task(name: str) -> Task:
    """Look a task up by name; the error lists the valid names."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[name]


__all__ = [
    "CATEGORIES",
    "DIFFICULTIES",
    "ID_TASKS",
    "OOD_TASKS",
    "PARAM_OOD_DIFFICULTY",
    "TASKS",
    "Sample",
    "ScoreResult",
    "Task",
    "get_task",
    "still_video",
]
