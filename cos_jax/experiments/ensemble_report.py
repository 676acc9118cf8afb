"""Results and report of `ensemble`: every recipe setting against single seeds, best of W and a majority
vote; the best setting chosen on one half of the problems and reported on the other; the measured cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cos_jax.analysis.report import Figure, Section, Table, curves, signed_interval
from cos_jax.analysis.stats import bootstrap_ci, paired_bootstrap_ci

BASELINES = ("single seed", "best of W", "majority vote")


def majority_pick(answers: np.ndarray) -> int:
    """Index of the world whose answer most worlds give (ties: the answer seen first)."""
    values, first, counts = np.unique(answers, return_index=True, return_counts=True)
    best = max(range(len(values)), key=lambda i: (counts[i], -first[i]))
    return int(first[best])


def _r(ci) -> list[float]:
    return [round(float(v), 6) for v in ci]


def baselines(single: dict) -> dict[str, np.ndarray]:
    """Per-problem success of the three baselines from the no-merge runs of the W seeds."""
    success, answers = single["success"], single["answer"]
    vote = np.array([success[p, majority_pick(answers[p])] for p in range(len(success))])
    return {"single seed": success.mean(1), "best of W": success.max(1), "majority vote": vote}


def halves(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(select, report) problem masks: alternate problems of each task."""
    rank = np.zeros(len(labels), int)
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):
        rank[i] = seen.get(lab, 0)
        seen[lab] = rank[i] + 1
    return rank % 2 == 0, rank % 2 == 1


def summarise(config: dict, info: dict, records: dict) -> dict:
    labels = [s["label"] for s in info["samples"]]
    select, held = halves(labels)
    base = baselines(records["single"])
    w = config["seeds_per_problem"]
    single_cost = records["single"]["call_seconds"]
    settings = {}
    for pid, rec in records.items():
        if pid == "single":
            continue
        per_problem = rec["success"].mean(1)
        settings[pid] = {
            "params": rec["params"],
            "success": _r(bootstrap_ci(per_problem)),
            "select_mean": round(float(per_problem[select].mean()), 6),
            "vs": {b: _r(paired_bootstrap_ci(per_problem, v)) for b, v in base.items()},
            "tasks": {t: round(float(per_problem[np.array(labels) == t].mean()), 6) for t in dict.fromkeys(labels)},
            "cost_vs_one_trajectory": round(w * rec["call_seconds"] / single_cost, 3),
        }
    best = {}
    for recipe in config["recipes"]:
        mine = {k: v for k, v in settings.items() if v["params"]["recipe"] == recipe}
        if not mine:
            continue
        pid = max(mine, key=lambda k: mine[k]["select_mean"])
        per_problem = records[pid]["success"].mean(1)
        best[recipe] = {
            "setting": pid,
            "select_mean": mine[pid]["select_mean"],
            "report_success": _r(bootstrap_ci(per_problem[held])) if held.any() else None,
            "report_vs": {b: _r(paired_bootstrap_ci(per_problem[held], v[held])) for b, v in base.items()}
            if held.any() else None,
        }  # fmt: skip
    return {
        "problems": len(labels),
        "select_problems": int(select.sum()),
        "report_problems": int(held.sum()),
        "seeds_per_problem": w,
        "baselines": {b: _r(bootstrap_ci(v)) for b, v in base.items()},
        "baselines_report_half": {b: _r(bootstrap_ci(v[held])) for b, v in base.items()} if held.any() else None,
        "baseline_tasks": {
            b: {t: round(float(v[np.array(labels) == t].mean()), 6) for t in dict.fromkeys(labels)}
            for b, v in base.items()
        },
        "single_call_seconds": round(float(single_cost), 4),
        "settings": settings,
        "best": best,
    }


def _fmt(ci) -> str:
    return "–" if ci is None else f"{ci[0]:.3f} [{ci[1]:.3f}, {ci[2]:.3f}]"


def report(results: dict, out: Path, records: dict) -> list:
    cfg = results["config"]
    w = results["seeds_per_problem"]
    ks = np.asarray(cfg["merge_steps"])
    series = {}
    for recipe in cfg["recipes"]:
        groups = [tuple(r) for r in cfg["layer_ranges"]] if recipe == "hidden" else [None]
        for g in groups:
            rows = [v for v in results["settings"].values() if v["params"]["recipe"] == recipe
                    and (g is None or tuple(v["params"]["layers"]) == g)]  # fmt: skip
            rows.sort(key=lambda v: v["params"]["K"])
            d = np.array([v["vs"]["single seed"] for v in rows]).T
            label = f"hidden L{g[0]}–{g[1] - 1}" if g else recipe
            series[label] = (d[0], d[1], d[2])
    f1 = curves(out / "gain.png", ks, series, f"ensemble of {w} seeds: success − mean single-seed success",
                "K (merge steps)", "difference (paired 95 % CI)")  # fmt: skip
    base = results["baselines"]
    rows = [[pid, v["params"].get("layers", "–"), v["params"]["K"], _fmt(v["success"]),
             *(signed_interval(v["vs"][k]) for k in BASELINES),
             v["cost_vs_one_trajectory"]] for pid, v in results["settings"].items()]  # fmt: skip
    best_rows = [[r, b["setting"], b["select_mean"], _fmt(b["report_success"]),
                  *[signed_interval(b["report_vs"][k]) if b["report_vs"] else "–" for k in BASELINES]]
                 for r, b in results["best"].items()]  # fmt: skip
    tasks = list(next(iter(results["baseline_tasks"].values())))
    task_rows = [[b, *[v[t] for t in tasks]] for b, v in results["baseline_tasks"].items()]
    task_rows += [[pid, *[v["tasks"][t] for t in tasks]] for pid, v in results["settings"].items()]
    return [
        Section("Baselines on the same seeds",
                [f"{results['problems']} problems × {w} seeds (seed + {w}·p + w). Majority vote: the video whose "
                 "answer (leading candidate) most seeds give. Intervals: bootstrap 95 % over problems."],
                tables=[Table(["baseline", "success"], [[b, _fmt(v)] for b, v in base.items()])]),
        Section("Every setting (all problems)",
                ["A recipe's success on a problem is the mean over its W worlds. Differences are paired over "
                 "problems. Cost: the measured time of one call (compile excluded) × W / the single-seed call "
                 f"({results['single_call_seconds']} s per call of W seeds per problem), i.e. in units of one "
                 "trajectory."],
                tables=[Table(["point", "layers [a, b)", "K", "success", "− single seed", "− best of W",
                               "− majority vote", "cost (trajectories)"], rows),
                        Table(["method", *tasks], task_rows, caption="success per task")],
                figures=[Figure(f1, caption="gain over the mean single seed against K, per recipe")]),
        Section("Best setting per recipe, held out",
                [f"Chosen on {results['select_problems']} problems (even indices per task), reported on the other "
                 f"{results['report_problems']} with paired bootstrap 95 % intervals."],
                tables=[Table(["recipe", "chosen", "success (select half)", "success (report half)", "− single seed",
                               "− best of W", "− majority vote"], best_rows)]),
    ]  # fmt: skip
