"""Paired comparison of bench runs: a clean run against perturbed runs of the same samples (the paper's
Fig. 3b over a bench), from per-sample scores of the cos-jax scorers or of VBVR-EvalKit.

VBVR-EvalKit (github.com/Video-Reason/VBVR-EvalKit, `run_evaluation.py`) scores a run folder's
``<split>/<task>/<NNNNN>.mp4`` into ``<output_dir>/<name>_vbvr_results.json``, whose ``samples`` list holds
each video's ``video_path`` and ``score`` (0-1, no success flag); run it with ``--output_dir OUT`` so the file
lands in the run folder, where `evalkit_scores` finds it.

Each run folder is a `cos-jax bench run` OUT; its record (run.json) says the model, its settings and the
perturbation. Samples are paired by (split, task, sample); the drop is clean − perturbed per sample, with
a paired bootstrap interval per task and over all paired samples.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cos_jax.analysis.stats import paired_bootstrap_ci
from cos_jax.bench.runner import differences
from cos_jax.tasks.cli import RESULTS_FILE

Key = tuple[str, str, str]  # (split folder, task, sample number)


class CompareError(ValueError):
    """A run folder or score file that cannot be compared (one line, naming the fix)."""


@dataclass(frozen=True)
class RunScores:
    """One run's identity (from its record) and per-sample scores in [0, 1] (success where the scorer says)."""

    folder: Path
    model: str
    settings: dict[str, Any]
    scores: dict[Key, float]
    success: dict[Key, bool]

    @property
    def perturb(self) -> dict[str, Any] | None:
        return self.settings.get("perturb")

    @property
    def label(self) -> str:
        """ "clean", or the perturbation as `--perturb` spells it."""
        from cos_jax.bench.generators import Perturbation

        return "clean" if self.perturb is None else Perturbation(**self.perturb).spec


def read_record(out: str | Path) -> tuple[str, dict[str, Any]]:
    """The model name and settings of the run in `out` (its run*.json records agree; the runner checks)."""
    records = sorted(Path(out).glob("run*.json"))
    if not records:
        raise CompareError(f"{out} holds no run record (run.json); give a folder written by `cos-jax bench run`")
    record = json.loads(records[0].read_text())
    return record["model"], record["settings"]


def _sample_key(split: str, task: str, sample: str | int) -> Key:
    return split, task, f"{int(sample):05d}"


def cos_jax_scores(out: str | Path) -> tuple[dict[Key, float], dict[Key, bool]]:
    """Per-sample scores and successes of `cos-jax bench evaluate` (OUT/cos_jax_results.json)."""
    path = Path(out) / RESULTS_FILE
    if not path.is_file():
        raise CompareError(f"no scores at {path}; make them with `cos-jax bench evaluate DATA {out}`")
    rows = [(_sample_key(r["split"], r["task"], r["sample"]), r) for r in json.loads(path.read_text())["samples"]]
    return {k: float(r["score"]) for k, r in rows}, {k: bool(r["success"]) for k, r in rows}


EVALKIT_RESULTS = "*_vbvr_results.json"


def _evalkit_key(sample: dict) -> Key:
    """(split, task, sample) of an EvalKit sample: the last three parts of its video path, else its fields."""
    path = sample.get("video_path")
    if path:
        split, task, video = Path(path).parts[-3:]
        return _sample_key(split, task, Path(video).stem)
    return _sample_key(sample["split"], sample["task_name"], Path(sample["video_file"]).stem)


def evalkit_scores(out: str | Path) -> dict[Key, float]:
    """Per-sample scores of VBVR-EvalKit's results file in the run folder `out` (``*_vbvr_results.json``)."""
    found = sorted(Path(out).glob(EVALKIT_RESULTS))
    if len(found) != 1:
        what = (
            "no VBVR-EvalKit results"
            if not found
            else f"{len(found)} results files ({', '.join(f.name for f in found)})"
        )
        raise CompareError(f"{out} holds {what}; score it once with VBVR-EvalKit: python run_evaluation.py "
                           f"--model_path {out} --gt_base DATA --output_dir {out}")  # fmt: skip
    try:
        samples = json.loads(found[0].read_text())["samples"]
        return {_evalkit_key(s): float(s["score"]) for s in samples}
    except (KeyError, TypeError, ValueError) as e:
        raise CompareError(f"{found[0]} is not a VBVR-EvalKit results file with per-sample scores ({e!r})") from None


def load_run(out: str | Path, source: str = "cos-jax") -> RunScores:
    """A run folder's record and scores; `source` is "cos-jax" or "evalkit"."""
    model, settings = read_record(out)
    if source == "cos-jax":
        scores, success = cos_jax_scores(out)
    elif source == "evalkit":
        scores, success = evalkit_scores(out), {}
    else:
        raise CompareError(f"unknown score source {source!r}; choose cos-jax or evalkit")
    return RunScores(Path(out), model, settings, scores, success)


def _check_comparable(clean: RunScores, run: RunScores) -> None:
    if clean.perturb is not None:
        raise CompareError(f"{clean.folder} is a perturbed run ({clean.label}); give the clean run first")
    if run.perturb is None:
        raise CompareError(f"{run.folder} is not perturbed; every folder after the first needs `--perturb`")
    base = {k: v for k, v in run.settings.items() if k != "perturb"}
    diff = differences({"model": clean.model, **clean.settings}, {"model": run.model, **base})
    if diff:
        raise CompareError(f"{run.folder} and {clean.folder} differ in {'; '.join(diff)}, not only in the perturbation")


def _paired(clean: dict[Key, float], other: dict[Key, float], keys: list[Key], n_boot: int, seed: int) -> dict:
    a = np.array([clean[k] for k in keys])
    b = np.array([other[k] for k in keys])
    drop, low, high = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed)
    return {"n": len(keys), "clean": float(a.mean()), "perturbed": float(b.mean()),
            "drop": float(drop), "drop_low": float(low), "drop_high": float(high)}  # fmt: skip


def compare_runs(clean: RunScores, perturbed: list[RunScores], n_boot: int = 2000, seed: int = 0) -> dict:
    """Per setting: paired score drops (overall and per task) and success rates where the scorer gives them."""
    settings = []
    for run in perturbed:
        _check_comparable(clean, run)
        keys = sorted(clean.scores.keys() & run.scores.keys())
        if not keys:
            raise CompareError(f"{run.folder} and {clean.folder} share no scored sample; were they run on one bench?")
        by_task: dict[str, list[Key]] = defaultdict(list)
        for k in keys:
            by_task[k[1]].append(k)
        entry = {
            "folder": str(run.folder),
            "label": run.label,
            "perturb": run.perturb,
            "unpaired": len(clean.scores.keys() ^ run.scores.keys()),
            "score": _paired(clean.scores, run.scores, keys, n_boot, seed),
            "by_task": {t: _paired(clean.scores, run.scores, ks, n_boot, seed) for t, ks in sorted(by_task.items())},
        }
        if keys[0] in clean.success and keys[0] in run.success:
            clean_ok = {k: float(clean.success[k]) for k in keys}
            run_ok = {k: float(run.success[k]) for k in keys}
            entry["success"] = _paired(clean_ok, run_ok, keys, n_boot, seed)
        settings.append(entry)
    return {"clean": {"folder": str(clean.folder), "model": clean.model, "settings": clean.settings,
                      "samples": len(clean.scores)}, "settings": settings}  # fmt: skip


def _series(settings: list[dict], axis: str) -> dict[str, list[dict]]:
    """Settings perturbed at one `axis` ("step" or "frame"), grouped by (mode, alpha), ordered along the axis."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for s in settings:
        if s["perturb"].get(axis) is not None:
            groups[f"{s['perturb']['mode']} α={s['perturb']['alpha']:g}"].append(s)
    return {label: sorted(group, key=lambda s: s["perturb"][axis]) for label, group in sorted(groups.items())}


def write_compare_report(results: dict, out: str | Path, command: str | None = None) -> Path:
    """results.json, one figure per perturbed axis (score drop with its interval) and report.{md,html} in `out`."""
    from cos_jax.analysis.report import Figure, Section, Table, curves, write_html, write_markdown
    from cos_jax.arrays_io import atomic_write

    out = Path(out)
    atomic_write(out / "results.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1) + "\n"))
    settings = results["settings"]
    rows = []
    for s in settings:
        sc, su = s["score"], s.get("success")
        rows.append([s["label"], sc["n"], sc["clean"], sc["perturbed"], sc["drop"], f"[{sc['drop_low']:.3f}, "
                     f"{sc['drop_high']:.3f}]", "-" if su is None else su["drop"]])  # fmt: skip
    header = ["setting", "n", "clean", "perturbed", "drop", "95 % interval", "success drop"]
    note = (
        "Drop = clean − perturbed score, paired per sample, 95 % bootstrap interval over samples. A drop whose "
        "interval excludes 0 is an effect of the perturbation at that setting."
    )
    sections = [Section("Score drop per setting", [note], tables=[Table(header, rows)])]
    for axis in ("step", "frame"):
        series = _series(settings, axis)
        if not series:
            continue
        figures = []
        for label, group in series.items():
            x = np.array([s["perturb"][axis] for s in group])
            band = tuple(np.array([s["score"][k] for s in group]) for k in ("drop", "drop_low", "drop_high"))
            name = f"drop_vs_{axis}_{group[0]['perturb']['mode']}_alpha{group[0]['perturb']['alpha']:g}.png"
            path = curves(out / name, x, {label: band},
                          f"score drop against the perturbed {axis}", axis, "clean − perturbed score")  # fmt: skip
            figures.append(Figure(path=path, caption=f"{label}: mean drop with its 95 % interval"))
        tasks = sorted({t for s in settings for t in s["by_task"]})
        table = Table(["setting", *tasks], [[s["label"], *(s["by_task"].get(t, {}).get("drop", "-") for t in tasks)]
                                            for group in series.values() for s in group])  # fmt: skip
        sections.append(Section(f"Perturbed {axis}", figures=figures, tables=[table]))
    clean = results["clean"]
    meta = {"clean run": clean["folder"], "model": clean["model"], "settings": clean["settings"],
            "samples in the clean run": clean["samples"]}  # fmt: skip
    if command:
        meta["command"] = command
    write_markdown(out / "report.md", "Perturbation against the clean run", sections, meta)
    return write_html(out / "report.html", "Perturbation against the clean run", sections, meta)
