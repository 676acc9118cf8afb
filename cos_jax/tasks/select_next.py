"""Select the next figure (4-way choice): three squares change size by a constant step; ring the option
that continues the sequence (VBVR G-131 / G-135)."""

from __future__ import annotations

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, progress, weighted

PITCH, TOP_Y, BOTTOM_Y = 8.0, 3.0, 19.0  # units
ON = 0.3


def ring_mask(cv: Canvas, k: int) -> np.ndarray:
    """The 1-unit border of candidate cell k (the answer ring)."""
    outer = cv.rect_mask(k * PITCH, BOTTOM_Y, PITCH, PITCH)
    return outer & ~cv.rect_mask(k * PITCH + 1, BOTTOM_Y + 1, PITCH - 2, PITCH - 2)


def question_slot(cv: Canvas) -> np.ndarray:
    """The "?" slot, where a model may copy its answer without penalty."""
    return cv.rect_mask(3 * PITCH, TOP_Y, PITCH, PITCH)


def square(cv: Canvas, col: int, y: float, size: int, colour: str) -> None:
    off = (PITCH - size) / 2
    cv.rect(col * PITCH + off, y + off, size, size, colour)


def draw_problem(cv: Canvas, params: dict) -> None:
    for i, size in enumerate(params["sequence"]):
        square(cv, i, TOP_Y, size, params["colour"])
    q = cv.rect_mask(3 * PITCH + 1, TOP_Y + 1, PITCH - 2, PITCH - 2)
    cv.paint(q & ~cv.rect_mask(3 * PITCH + 2, TOP_Y + 2, PITCH - 4, PITCH - 4), "gray")
    for k, (colour, size) in enumerate(params["candidates"]):
        square(cv, k, BOTTOM_Y, size, colour)


class SelectNext(Task):
    name = "select_next"
    category = "Abstraction"
    split = "id"
    vbvr = "G-131 select_next_figure_increasing_size (ID), G-135 (OOD)"
    multiple_choice = True

    def sample_params(self, rng, difficulty):
        names = list(rng.permutation(palette.OBJECT_COLOURS))
        colour, other, other2 = names[:3]
        if difficulty == 3:  # decreasing sizes: a rule direction never seen in training
            ans = int(rng.integers(2, 4))
            seq = [ans + 3, ans + 2, ans + 1]
            wrong = [(colour, ans - 1), (other, ans), (colour, ans + 1)]
        else:
            s = int(rng.integers(1, 3))
            seq, ans = [s, s + 1, s + 2], s + 3
            wrong = (
                [(other, ans), (colour, s), (other2, s)]
                if difficulty == 1
                else [(colour, s + 4), (other, ans), (colour, s + 2)]
            )
        cands = [(colour, ans), *wrong]
        order = rng.permutation(4)
        return {"colour": colour, "sequence": seq, "candidates": [list(cands[i]) for i in order]}

    def solve(self, params):
        target = [params["colour"], 2 * params["sequence"][2] - params["sequence"][1]]
        return {"answer": params["candidates"].index(target)}

    def prompt(self, params):
        return (
            "Top row: three squares of one colour whose size changes by a constant step from left to right, "
            "then an empty gray slot. Bottom row: four options. Find the option that continues the sequence "
            "with the same colour and size step, and draw a red square ring around it. Change nothing else."
        )

    def pair_params(self, params, rng, difficulty):
        """B: the same candidates under the sequence one size larger (s+1, s+2, s+3), whose answer (s+4) is
        another candidate; only increasing sequences whose B answer is on offer have a partner."""
        seq, colour = params["sequence"], params["colour"]
        if seq[1] - seq[0] != 1:
            return None
        shifted = [v + 1 for v in seq]
        if [colour, shifted[2] + 1] not in [list(c) for c in params["candidates"]]:
            return None
        return {**params, "sequence": shifted}

    def check_difficulty(self, params, solution, difficulty):
        seq = params["sequence"]
        step = seq[1] - seq[0]
        assert step == seq[2] - seq[1] == (-1 if difficulty == 3 else 1)
        assert [list(c) for c in params["candidates"]].count([params["colour"], seq[2] + step]) == 1
        assert all(1 <= size <= 6 for _, size in params["candidates"])

    def _video(self, meta, k: int) -> np.ndarray:
        n = meta["num_frames"]
        base = Canvas(meta["resolution"])
        draw_problem(base, meta["params"])
        ring = ring_mask(base, k)
        frames = []
        for t in range(n):
            cv = base.copy()
            cv.paint(ring, "red", progress(t, n))
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, meta["solution"]["answer"])

    def wrong_video(self, sample: Sample) -> np.ndarray:
        return self._video(sample.meta, (sample.meta["solution"]["answer"] + 1 + sample.meta["seed"] % 3) % 4)

    def candidate_activations(self, frames, meta, problem=None):
        red = palette.presence(frames[-1], "red", problem)
        cv = Canvas(meta["resolution"])
        return np.array([float(red[ring_mask(cv, k)].mean()) for k in range(4)])

    def correct_candidates(self, meta):
        return (meta["solution"]["answer"],)

    def score_frames(self, frames, meta) -> ScoreResult:
        a = self.candidate_activations(frames, meta)
        n = int((a >= ON).sum())
        choice = int(a.argmax()) if a.max() >= ON else -1
        ref = Canvas(meta["resolution"])
        draw_problem(ref, meta["params"])
        keep = np.ones(ref.img.shape[:2], dtype=bool)
        for k in range(4):
            keep &= ~ring_mask(ref, k)
        keep &= ~question_slot(ref)
        diff = np.abs(frames[-1].astype(np.float32) - ref.img.astype(np.float32))[keep].mean() / 255.0
        subs = {
            "correct": float(choice == meta["solution"]["answer"] and n == 1),
            "uniqueness": 1.0 if n == 1 else (0.0 if n == 0 else max(0.0, 1 - 0.3 * (n - 1))),
            "preservation": float(diff < 10 / 255),
        }
        w = {"correct": 0.6, "uniqueness": 0.2, "preservation": 0.2}
        return weighted(subs, w, success=subs["correct"] == 1 and n == 1 and subs["preservation"] == 1, gate=n > 0)
