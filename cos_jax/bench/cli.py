"""`cos-jax bench run | evaluate | compare`: generate videos for a VBVR-Bench-style folder, score them, and
compare perturbed runs with the clean one.

The main CLI registers these with ``add_commands(subparsers)``.
"""

from __future__ import annotations

import sys
import warnings


def _tasks(text: str | None) -> list[str] | None:
    names = [t.strip() for t in (text or "").split(",") if t.strip()]
    return names or None


def _run(args) -> int:
    from cos_jax.bench.generators import make_generator, parse_perturbation
    from cos_jax.bench.runner import BenchRunError, parse_shard, run_bench
    from cos_jax.tasks.bench import list_samples

    warnings.filterwarnings("ignore", message="os.fork")  # the mp4 writer's ffmpeg subprocess
    try:
        shard = parse_shard(args.shard)
        list_samples(args.data)  # fail on a bad DATA folder before loading a model
        if args.vae_precision and args.model != "wan":
            raise ValueError(f"--vae-precision: the {args.model} backend has no VAE (only --model wan does)")
        options = {k: v for k, v in (("weights", args.weights), ("devices", args.devices),
                                     ("perturb", parse_perturbation(args.perturb)),
                                     ("vae_precision", args.vae_precision)) if v is not None}  # fmt: skip
        generator = make_generator(args.model, steps=args.steps, guidance=args.guidance, batch=args.batch, **options)
        summary = run_bench(args.data, args.out, generator, split=args.split, tasks=_tasks(args.tasks),
                            limit=args.limit, shard=shard, seed=args.seed, progress=not args.quiet)  # fmt: skip
    except (BenchRunError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{summary['generated']} generated, {summary['skipped']} already done, {summary['failed']} failed "
        f"of {summary['selected']} selected in {summary['seconds']:.1f} s; record: {summary['record']}"
    )
    if summary["failed"]:
        print("failed samples are listed with their error in the record; rerun to retry them", file=sys.stderr)
    return 1 if summary["failed"] else 0


def _evaluate(args) -> int:
    from pathlib import Path

    from cos_jax.tasks.bench import list_samples
    from cos_jax.tasks.cli import score_videos

    try:
        entries = list_samples(args.data)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not any((e.folder / "meta.json").is_file() for e in entries):
        print(
            f"error: the samples under {args.data} carry no cos-jax meta.json (VBVR-Bench-Data?); score them with "
            f"VBVR-EvalKit: python run_evaluation.py --model_path {args.out} --gt_base {args.data} "
            f"--output_dir {args.out}",
            file=sys.stderr,
        )
        return 2
    if not Path(args.out).is_dir():
        print(f"error: no videos folder {args.out}; make one with `cos-jax bench run {args.data} {args.out}`",
              file=sys.stderr)  # fmt: skip
        return 2
    return score_videos(args.out, args.data, args.json)


def _compare(args) -> int:
    from cos_jax.bench.compare import CompareError, compare_runs, load_run, write_compare_report

    try:
        runs = [load_run(folder, args.scores) for folder in [args.clean, *args.perturbed]]
        results = compare_runs(runs[0], runs[1:], n_boot=args.n_boot)
    except (CompareError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = write_compare_report(results, args.report, args.command_line)
    for s in results["settings"]:
        sc = s["score"]
        print(f"{s['label']:<32} n={sc['n']:<5} clean {sc['clean']:.3f}  perturbed {sc['perturbed']:.3f}  "
              f"drop {sc['drop']:+.3f} [{sc['drop_low']:+.3f}, {sc['drop_high']:+.3f}]")  # fmt: skip
    print(f"report: {report}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``bench`` and its sub-commands on the main CLI's subparsers."""
    bench = subparsers.add_parser("bench", help="VBVR-Bench runner: generate a video per sample, then score")
    sub = bench.add_subparsers(dest="bench_command", required=True)

    r = sub.add_parser(
        "run",
        help="generate <OUT>/<split>/<task>/<NNNNN>.mp4 for every sample of a bench folder (resumable)",
        description="Each sample is generated at its ground truth's frame count and size. Outputs that exist "
        "and read back are skipped, so rerunning the same command resumes. Seeds come from task and sample "
        "names. The run record is OUT/run.json (OUT/run.shard-<i>-of-<n>.json with --shard).",
    )
    r.add_argument("data", help="bench folder: In-Domain[_50]/ and Out-of-Domain[_50]/ of <task>/<sample>/")
    r.add_argument("out", help="output folder (VBVR-EvalKit's --model_path)")
    r.add_argument("--model", default="toy", help="toy (default), wan, or package.module:function")
    r.add_argument("--steps", type=int, default=50, help="denoising steps")
    r.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance scale")
    r.add_argument("--batch", type=int, default=8, help="worlds per call (toy: rounded up to a multiple of the "
                   "local devices; the last batch is padded)")  # fmt: skip
    r.add_argument("--tasks", help="comma-separated task folder names (default: all)")
    r.add_argument("--split", default="all", choices=("id", "ood", "all"), help="In-Domain, Out-of-Domain or both")
    r.add_argument("--limit", type=int, help="at most N samples per task (the first N by sample number)")
    r.add_argument("--shard", default="0/1", help="i/n: this host takes every n-th selected sample from the i-th")
    r.add_argument("--seed", type=int, default=0, help="base seed added to each sample's name hash")
    r.add_argument("--weights", help="toy: a weights .npz instead of the shipped one; wan: the model folder")
    r.add_argument("--devices", type=int, help="toy: use the first N local devices (default: all)")
    r.add_argument("--perturb", help="noise in every trajectory (Fig. 3b): MODE:step=S:alpha=A or "
                   "MODE:frame=F:alpha=A, MODE replace, add or renoise; one OUT per setting")  # fmt: skip
    r.add_argument("--vae-precision", choices=("fp32", "tf32"), help="wan: VAE arithmetic, float32 (default) or "
                   "TF32 on NVIDIA GPUs (480p x 81 decode 9.2 -> 1.5 s on an H200)")  # fmt: skip
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=_run)

    e = sub.add_parser("evaluate", help="score OUT against DATA with the cos-jax task scorers (`tasks score`)")
    e.add_argument("data", help="bench folder written by `cos-jax tasks generate`")
    e.add_argument("out", help="videos folder written by `cos-jax bench run`")
    e.add_argument("--json", help="results file (default: OUT/cos_jax_results.json)")
    e.set_defaults(func=_evaluate)

    c = sub.add_parser("compare", help="paired score drops of perturbed runs against the clean run, with a report",
                       description="Pairs each perturbed run's samples with the clean run's (same bench, model and "
                       "settings but the perturbation) and reports the score drop per setting and task with 95 % "
                       "bootstrap intervals, figures against the perturbed step or frame, results.json and "
                       "report.{md,html}.")  # fmt: skip
    c.add_argument("clean", help="OUT of the clean run (`cos-jax bench run`)")
    c.add_argument("perturbed", nargs="+", help="OUTs of perturbed runs (`cos-jax bench run --perturb ...`)")
    c.add_argument("--report", required=True, help="folder for results.json, figures and report.{md,html}")
    c.add_argument("--scores", default="cos-jax", choices=("cos-jax", "evalkit"),
                   help="per-sample scores from `cos-jax bench evaluate` (OUT/cos_jax_results.json) or from "
                   "VBVR-EvalKit (OUT/*_vbvr_results.json: run_evaluation.py --output_dir OUT)")  # fmt: skip
    c.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples per interval")
    c.set_defaults(func=_compare)
