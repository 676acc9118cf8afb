"""Majority colour: every square that is not the majority colour turns into it (VBVR O-38)."""

from __future__ import annotations

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, progress, region_labels, weighted

LAYOUT = {3: (10.0, 6.0, 3.0), 4: (8.0, 5.0, 2.0)}  # slots per side → (pitch, square, origin) in units
COUNTS = {
    1: [(6, 2, 1), (5, 2, 2), (7, 1, 1), (6, 3)],
    2: [(4, 3, 2), (5, 3, 1), (5, 4), (4, 3, 1, 1)],
    3: [(6, 5, 3, 2), (5, 4, 4, 3), (6, 4, 3, 3)],  # 4×4 slots: beyond training
}


def slot_rect(n: int, i: int, shrink: float = 0.0) -> tuple[float, float, float, float]:
    pitch, size, origin = LAYOUT[n]
    r, c = divmod(i, n)
    return origin + c * pitch + shrink, origin + r * pitch + shrink, size - 2 * shrink, size - 2 * shrink


class MajorityColour(Task):
    name = "majority_colour"
    category = "Perception"
    split = "id"
    vbvr = "O-38 majority_color (ID)"

    def sample_params(self, rng, difficulty):
        counts = COUNTS[difficulty][int(rng.integers(len(COUNTS[difficulty])))]
        colours = list(rng.permutation(palette.OBJECT_COLOURS)[: len(counts)])
        squares = [c for c, k in zip(colours, counts, strict=True) for _ in range(k)]
        return {"side": 4 if difficulty == 3 else 3, "squares": [squares[i] for i in rng.permutation(len(squares))]}

    def solve(self, params):
        names, counts = np.unique(params["squares"], return_counts=True)
        return {
            "majority": str(names[counts.argmax()]),
            "counts": dict(zip(names.tolist(), counts.tolist(), strict=True)),
        }

    def prompt(self, params):
        return (
            "Squares of several colours. Find the colour that most squares have, and gradually turn every other "
            "square into that colour. Keep every square's size and position; change nothing else."
        )

    def check_difficulty(self, params, solution, difficulty):
        counts = sorted(solution["counts"].values(), reverse=True)
        assert counts[0] > counts[1] and sum(counts) == params["side"] ** 2
        assert (counts[0] - counts[1] >= 3) if difficulty == 1 else (counts[0] - counts[1] <= 2)

    def _video(self, meta, target: str) -> np.ndarray:
        p, n = meta["params"], meta["num_frames"]
        maj = meta["solution"]["majority"]
        frames = []
        for t in range(n):
            cv = Canvas(meta["resolution"])
            for i, colour in enumerate(p["squares"]):
                cv.rect(*slot_rect(p["side"], i), colour)
                if colour != maj:
                    cv.rect(*slot_rect(p["side"], i), target, alpha=progress(t, n))
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, meta["solution"]["majority"])

    def wrong_video(self, sample: Sample) -> np.ndarray:
        counts = sample.meta["solution"]["counts"]
        runner_up = sorted(counts, key=lambda c: (-counts[c], c))[1]
        return self._video(sample.meta, runner_up)

    def score_frames(self, frames, meta) -> ScoreResult:
        p = meta["params"]
        side, res = p["side"], meta["resolution"]
        maj = palette.LABEL[meta["solution"]["majority"]]
        labels = palette.decode(frames)
        final = [palette.majority(region_labels(labels[-1], res, *slot_rect(side, i, 1.0)))[0] for i in range(side**2)]
        minority = [i for i, c in enumerate(p["squares"]) if palette.LABEL[c] != maj]
        majority_slots = [i for i, c in enumerate(p["squares"]) if palette.LABEL[c] == maj]
        converted = np.mean([final[i] == maj for i in minority])
        untouched = np.mean(
            [all(palette.majority(region_labels(lab, res, *slot_rect(side, i, 1.0)))[0] == maj for lab in labels)
             for i in majority_slots]
        )  # fmt: skip
        cv = Canvas(res)
        inside = np.zeros((res, res), dtype=bool)
        filled = []
        for i in range(side**2):
            m = cv.rect_mask(*slot_rect(side, i))
            inside |= m
            filled.append((labels[-1][m] != palette.LABEL["white"]).mean() >= 0.8)
        ink = labels[-1] != palette.LABEL["white"]
        outside = (ink & ~inside).sum() / max(ink.sum(), 1)
        preserved = all(filled) and outside < 0.02
        subs = {"converted": converted, "untouched_majority": untouched, "preservation": float(preserved)}
        w = {"converted": 0.6, "untouched_majority": 0.2, "preservation": 0.2}
        success = all(f == maj for f in final) and preserved
        return weighted(subs, w, success=success, gate=converted > 0 and outside < 0.1)
