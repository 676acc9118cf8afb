"""Tic-tac-toe, win in one: X to move marks a winning cell (DVR's multi-path example).

`TicTacToe` boards have exactly one winning cell. `TicTacToeTwo` boards have two, and either one is right.
Its ground-truth video marks one of them, chosen by the sample's seed, so training data holds both
answers of each board. A model trained on it should keep both in its early x̂0 and then commit to one:
multi-path exploration by construction.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, progress, region_labels, weighted

LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))
CELL, ORIGIN, MARK = 10.0, 1.0, 6.0  # units: cell pitch, board origin, piece size
ON, SEEN = 0.4, 0.15


def winner(board: tuple[int, ...]) -> int:
    """1 (X) or 2 (O) if that side has three in a row, else 0."""
    for a, b, c in LINES:
        if board[a] and board[a] == board[b] == board[c]:
            return board[a]
    return 0


def winning_moves(board: tuple[int, ...], side: int) -> list[int]:
    moves = []
    for i in range(9):
        if board[i] == 0:
            b = list(board)
            b[i] = side
            if winner(tuple(b)) == side:
                moves.append(i)
    return moves


@cache
def positions(wins: int = 1) -> tuple[tuple[int, ...], ...]:
    """All boards reachable in legal play, X to move, nobody has won, X has exactly ``wins`` winning moves."""
    seen: set[tuple[int, ...]] = set()
    stack = [(0,) * 9]
    while stack:
        b = stack.pop()
        if b in seen:
            continue
        seen.add(b)
        if winner(b) or 0 not in b:
            continue
        side = 1 if b.count(1) == b.count(2) else 2
        for i in range(9):
            if b[i] == 0:
                stack.append((*b[:i], side, *b[i + 1 :]))
    good = [b for b in seen if b.count(1) == b.count(2) and not winner(b) and len(winning_moves(b, 1)) == wins]
    return tuple(sorted(good))


@cache
def fewest_pieces(wins: int = 1) -> int:
    """Pieces on the smallest boards with ``wins`` winning cells (4 for one; 6 for two, which need three X)."""
    return min(9 - b.count(0) for b in positions(wins))


@cache
def pool_for(difficulty: int, wins: int = 1) -> tuple[tuple[int, ...], ...]:
    """Boards of a difficulty: 1 = the fewest pieces and no O threat, 2 = at most 6 pieces,
    3 = exactly 6 pieces with an O threat. Every board keeps at least 3 empty cells."""

    def ok(b):
        pieces = 9 - b.count(0)
        threat = bool(winning_moves(b, 2))
        few = pieces == fewest_pieces(wins)
        return pieces <= 6 and {1: few and not threat, 2: True, 3: pieces >= 6 and threat}[difficulty]

    return tuple(b for b in positions(wins) if ok(b))


def cell_box(i: int) -> tuple[float, float, float, float]:
    """The inner mark region (x, y, w, h) of cell i, in units."""
    r, c = divmod(i, 3)
    off = (CELL - MARK) / 2
    return ORIGIN + c * CELL + off + 0.5, ORIGIN + r * CELL + off + 0.5, MARK, MARK


def draw_board(cv: Canvas, board: tuple[int, ...] | list[int]) -> None:
    for k in range(4):  # grid lines
        cv.rect(ORIGIN + k * CELL, ORIGIN, 1, 3 * CELL + 1, "black")
        cv.rect(ORIGIN, ORIGIN + k * CELL, 3 * CELL + 1, 1, "black")
    for i, v in enumerate(board):
        x, y, w, h = cell_box(i)
        if v == 1:
            cv.rect(x, y, w, h, "red")
        elif v == 2:
            cv.rect(x, y, w, h, "blue")
            cv.rect(x + 1, y + 1, w - 2, h - 2, "white")


class TicTacToe(Task):
    name = "tictactoe"
    category = "Knowledge"
    split = "id"
    vbvr = "none (multi-path example of Demystifying Video Reasoning)"
    multiple_choice = True
    wins: ClassVar[int] = 1  # winning cells per board

    def sample_params(self, rng, difficulty):
        pool = pool_for(difficulty, self.wins)
        return {"board": list(pool[int(rng.integers(len(pool)))])}

    def solve(self, params):
        return {"win_cells": winning_moves(tuple(params["board"]), 1)}

    def drawn_cell(self, meta) -> int:
        """The winning cell the ground-truth video marks: one drawn uniformly from the seed (split seeds are
        mostly multiples of 1000, so the seed's parity would favour one answer)."""
        cells = meta["solution"]["win_cells"]
        return cells[int(np.random.default_rng(meta["seed"]).integers(len(cells)))]

    def prompt(self, params):
        return (
            "A tic-tac-toe board: red squares are X, blue rings are O, and it is X's turn. "
            "Place one X so that X gets three in a row. Draw the new X as a red square in its cell; "
            "change nothing else and keep the camera fixed."
        )

    def pair_params(self, params, rng, difficulty):
        """B: the board of the same difficulty nearest to A (fewest changed cells) whose winning cells are
        other cells, empty on both boards, so either board can show either answer."""
        a = tuple(params["board"])
        wins_a = set(winning_moves(a, 1))
        best, best_d = [], 10
        for b in pool_for(difficulty, self.wins):
            wins_b = set(winning_moves(b, 1))
            if wins_b & wins_a or any(a[i] for i in wins_b) or any(b[i] for i in wins_a):
                continue
            d = sum(x != y for x, y in zip(a, b, strict=True))
            if d < best_d:
                best, best_d = [b], d
            elif d == best_d:
                best.append(b)
        return {"board": list(best[int(rng.integers(len(best)))])} if best else None

    def check_difficulty(self, params, solution, difficulty):
        b = tuple(params["board"])
        assert b in positions(self.wins) and winning_moves(b, 1) == solution["win_cells"]
        if difficulty == 1:
            assert 9 - b.count(0) == fewest_pieces(self.wins) and not winning_moves(b, 2)
        if difficulty == 3:
            assert winning_moves(b, 2) and 9 - b.count(0) >= 6
        assert b.count(0) >= 3

    def _video(self, meta, cell: int) -> np.ndarray:
        res, n = meta["resolution"], meta["num_frames"]
        base = Canvas(res)
        draw_board(base, meta["params"]["board"])
        frames = []
        for t in range(n):
            cv = base.copy()
            cv.rect(*cell_box(cell), "red", alpha=progress(t, n))
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, self.drawn_cell(meta))

    def wrong_video(self, sample: Sample) -> np.ndarray:
        board = sample.meta["params"]["board"]
        empty = [i for i, v in enumerate(board) if v == 0 and i not in sample.meta["solution"]["win_cells"]]
        return self._video(sample.meta, empty[sample.meta["seed"] % len(empty)])

    def candidate_activations(self, frames, meta, problem=None):
        red = palette.presence(frames[-1], "red", problem)
        res = meta["resolution"]
        board = meta["params"]["board"]
        return np.array([float(region_labels(red, res, *cell_box(i)).mean()) if v == 0 else 0.0
                         for i, v in enumerate(board)])  # fmt: skip

    def correct_candidates(self, meta):
        return tuple(meta["solution"]["win_cells"])

    def score_frames(self, frames, meta) -> ScoreResult:
        a = self.candidate_activations(frames, meta)
        marked = set(np.flatnonzero(a >= ON).tolist())
        wins = set(meta["solution"]["win_cells"])
        n = len(marked)
        uniqueness = 1.0 if n == 1 else (0.0 if n == 0 else max(0.0, 1 - 0.3 * (n - 1)))
        ref = Canvas(meta["resolution"])
        draw_board(ref, meta["params"]["board"])
        keep = np.ones(ref.img.shape[:2], dtype=bool)
        for i, v in enumerate(meta["params"]["board"]):
            if v == 0:
                keep &= ~ref.rect_mask(*cell_box(i))
        ref_l, fin_l = palette.decode(ref.img)[keep], palette.decode(frames[-1])[keep]
        preserved = float((ref_l == fin_l).mean() >= 0.97)
        correct = n == 1 and marked <= wins
        subs = {"correct": float(correct), "uniqueness": uniqueness, "board_preserved": preserved}
        w = {"correct": 0.6, "uniqueness": 0.2, "board_preserved": 0.2}
        return weighted(subs, w, success=correct and preserved == 1.0, gate=n > 0)


class TicTacToeTwo(TicTacToe):
    """X has two winning cells; marking either one (and only one) is right."""

    name = "tictactoe_two"
    vbvr = "none (two valid answers: the multi-path exploration probe)"
    wins = 2
