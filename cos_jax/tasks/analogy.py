"""Shape-transformation analogy A→B :: C→?: apply the rule that turns A into B to C (VBVR O-9/O-12/O-14)."""

from __future__ import annotations

import numpy as np

from cos_jax.tasks import palette
from cos_jax.tasks.base import Canvas, Sample, ScoreResult, Task, progress, weighted

QUAD = 16.0
ORIGINS = {"A": (0.0, 0.0), "B": (QUAD, 0.0), "C": (0.0, QUAD), "D": (QUAD, QUAD)}
KINDS = ("square", "disk", "diamond")
RULES = {1: ("recolour", "outline"), 2: ("recolour", "outline", "scale_up", "scale_down", "move_up", "move_down")}
SHIFT, SCALE = 3.0, 1.5


def shape_mask(cv: Canvas, quad: str, s: dict, shrink: float = 0.0) -> np.ndarray:
    """Pixels of a shape {kind, colour, r, style, dy} in a quadrant (``shrink`` units smaller)."""
    ox, oy = ORIGINS[quad]
    dx, dy = cv.xs - (ox + QUAD / 2), cv.ys - (oy + QUAD / 2 + s["dy"])

    def solid(r):
        if s["kind"] == "square":
            return (np.abs(dx) <= r) & (np.abs(dy) <= r)
        if s["kind"] == "disk":
            return dx**2 + dy**2 <= (1.1 * r) ** 2
        return np.abs(dx) + np.abs(dy) <= 1.3 * r

    r = s["r"] - shrink
    m = solid(r)
    return m & ~solid(r - 1.0) if s["style"] == "outline" else m


def apply_rule(s: dict, rule: str) -> dict:
    s = dict(s)
    if rule.startswith("recolour:"):
        s["colour"] = rule.split(":", 1)[1]
    elif rule == "outline":
        s["style"] = "outline"
    elif rule == "scale_up":
        s["r"] = s["r"] * SCALE
    elif rule == "scale_down":
        s["r"] = s["r"] / SCALE
    elif rule == "move_up":
        s["dy"] = s["dy"] - SHIFT
    elif rule == "move_down":
        s["dy"] = s["dy"] + SHIFT
    return s


class Analogy(Task):
    name = "analogy"
    category = "Abstraction"
    split = "id"
    vbvr = "O-9 shape_scaling (OOD), O-12/O-14 shape_*_then_* (ID)"

    def sample_params(self, rng, difficulty):
        kinds = [str(k) for k in rng.permutation(KINDS)[:2]]
        cols = [str(c) for c in rng.permutation(palette.OBJECT_COLOURS)[:3]]
        if difficulty == 3:  # two-step compositions: beyond training
            pool = [("recolour", b) for b in RULES[2][1:]] + [("outline", b) for b in RULES[2][2:]]
            names = list(pool[int(rng.integers(len(pool)))])
        else:
            names = [str(rng.choice(RULES[difficulty]))]
        rules = [f"recolour:{cols[2]}" if r == "recolour" else r for r in names]
        big = "scale_down" in names
        radius = [float(rng.choice([4.5, 6.0] if big else [3.0, 4.0])) for _ in range(2)]
        a = {"kind": kinds[0], "colour": cols[0], "r": radius[0], "style": "filled", "dy": 0.0}
        c = {"kind": kinds[1], "colour": cols[1], "r": radius[1], "style": "filled", "dy": 0.0}
        return {"rules": rules, "A": a, "C": c}

    def solve(self, params):
        b, d = params["A"], params["C"]
        for rule in params["rules"]:
            b, d = apply_rule(b, rule), apply_rule(d, rule)
        return {"B": b, "D": d}

    def prompt(self, params):
        return (
            "Four panels. The top-right shape is the top-left shape after a transformation (colour, size, fill, "
            "or position). Apply the same transformation to the bottom-left shape and draw the result in the "
            "empty bottom-right panel. Leave the other panels unchanged."
        )

    def check_difficulty(self, params, solution, difficulty):
        assert len(params["rules"]) == (2 if difficulty == 3 else 1)
        if difficulty == 1:
            assert params["rules"][0] == "outline" or params["rules"][0].startswith("recolour:")
        assert solution["B"] != params["A"] and solution["D"] != params["C"]

    def _video(self, meta, d: dict) -> np.ndarray:
        p, n = meta["params"], meta["num_frames"]
        base = Canvas(meta["resolution"])
        for quad, s in (("A", p["A"]), ("B", meta["solution"]["B"]), ("C", p["C"])):
            base.paint(shape_mask(base, quad, s), s["colour"])
        target = shape_mask(base, "D", d)
        frames = []
        for t in range(n):
            cv = base.copy()
            cv.paint(target, d["colour"], progress(t, n))
            frames.append(cv.img)
        return np.stack(frames)

    def render(self, meta):
        return self._video(meta, meta["solution"]["D"])

    def wrong_video(self, sample: Sample) -> np.ndarray:
        return self._video(sample.meta, sample.meta["params"]["C"])  # C copied without the transformation

    def score_frames(self, frames, meta) -> ScoreResult:
        d = meta["solution"]["D"]
        cv = Canvas(meta["resolution"])
        labels = palette.decode(frames[-1])
        quad = cv.rect_mask(QUAD, QUAD, QUAD, QUAD)
        ink = quad & (labels != palette.LABEL["white"]) & (labels >= 0)
        want = shape_mask(cv, "D", d)
        area = ink.sum() / max(want.sum(), 1)
        colour = palette.majority(labels[ink])[0] if ink.any() else palette.UNKNOWN
        core = shape_mask(cv, "D", {**d, "style": "filled"}, shrink=1.5)
        filled = ink[core].mean() >= 0.5 if core.any() else False
        iou = (ink & want).sum() / max((ink | want).sum(), 1)
        ref = self.render(meta)[-1]
        others = ~quad
        same = (palette.decode(ref)[others] == labels[others]).mean()
        subs = {
            "colour": float(colour == palette.LABEL[d["colour"]]),
            "size": float(abs(area - 1) <= 0.2),
            "fill_style": float(filled == (d["style"] == "filled")),
            "position": float(iou >= 0.6),
            "others_unchanged": float(same >= 0.98),
        }
        w = {"colour": 0.3, "size": 0.3, "fill_style": 0.2, "position": 0.1, "others_unchanged": 0.1}
        gate = 0.2 <= area <= 3.0 and same >= 0.9
        return weighted(subs, w, success=iou >= 0.8 and subs["colour"] == 1, gate=gate)
