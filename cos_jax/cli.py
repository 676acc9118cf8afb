"""`cos-jax` command line."""

from __future__ import annotations

import argparse
import shlex
import sys

from cos_jax.bench import cli as bench_cli
from cos_jax.convert import cli as convert_cli
from cos_jax.experiments import cli as experiment_cli
from cos_jax.sampling import cli as sampling_cli
from cos_jax.tasks import cli as tasks_cli
from cos_jax.train import cli as train_cli


def _selfcheck(args) -> int:
    from cos_jax.convert.parity import PARITY_CASES, TOLERANCE, run_case
    from cos_jax.wan.config import PRESETS
    from cos_jax.wan.dit import abstract_dit, count_params

    print("cos-jax self-check: the JAX DiT beside diffusers' WanTransformer3DModel (random weights, fp32, CPU)\n")
    header = f"{'case':<28} {'weights':<10} {'reference':<18} {'max|Δ|':>10} {'max|ref|':>9} {'rel':>9}  ok"
    print(header)
    print("-" * len(header))
    failures = 0
    for case in PARITY_CASES:
        runs = [("diffusers", True), ("official", True), ("diffusers", False)]
        for layout, official_time in runs:
            r = run_case(case, layout=layout, official_time=official_time)
            gated = official_time
            mark = ("yes" if r.ok else "NO") if gated else "(info)"
            failures += gated and not r.ok
            print(f"{r.case:<28} {r.layout:<10} {r.reference:<18} {r.max_abs_diff:>10.2e} "
                  f"{r.max_abs_ref:>9.3f} {r.relative:>9.2e}  {mark}")  # fmt: skip
    print(f"\ncriterion: max|Δ| <= {TOLERANCE:g} * max|ref| against the official float64 timestep sinusoid;")
    print("'stock diffusers' rows use diffusers' float32 sinusoid and are shown for information.\n")
    print(f"{'preset':<10} {'parameters (jax.eval_shape)':>28}")
    for name, cfg in PRESETS.items():
        print(f"{name:<10} {count_params(abstract_dit(cfg)):>28,}")
    print("\nall parity checks passed" if not failures else f"\n{failures} parity checks FAILED")
    return 1 if failures else 0


def _demo(args) -> int:
    import warnings

    from cos_jax.analysis.demo import run_demo

    warnings.filterwarnings("ignore", message="os.fork")  # the mp4 writer's ffmpeg subprocess
    per_task, steps = (1, 8) if args.quick else (args.per_task, args.steps)
    run_demo(args.out, per_task=per_task, steps=steps, weights=args.weights)
    return 0


def _presets(args) -> int:
    from cos_jax.wan.config import PRESETS
    from cos_jax.wan.dit import abstract_dit, count_params

    for name, cfg in PRESETS.items():
        print(f"{name:<10} {count_params(abstract_dit(cfg)):>16,}  {cfg}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cos-jax", description=__doc__)
    group = parser.add_argument_group("multi-process runs (jax.distributed; also from JAX_COORDINATOR_ADDRESS, "
                                      "JAX_NUM_PROCESSES, JAX_PROCESS_ID)")  # fmt: skip
    group.add_argument("--coordinator", help="HOST:PORT of process 0, or 'auto' (SLURM, Open MPI, TPU pods)")
    group.add_argument("--num-processes", type=int, help="processes in the run")
    group.add_argument("--process-id", type=int, help="this process's index, 0 … N−1")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("selfcheck", help="parity table against diffusers + full-size parameter counts").set_defaults(
        func=_selfcheck
    )
    sub.add_parser("presets", help="list the DiT presets with parameter counts").set_defaults(func=_presets)
    sampling_cli.add_commands(sub)
    tasks_cli.add_commands(sub)
    convert_cli.add_commands(sub)
    bench_cli.add_commands(sub)
    experiment_cli.add_commands(sub)
    train_cli.add_commands(sub)
    demo = sub.add_parser("demo", help="the shipped toy world on held-out puzzles: videos, x̂0 grids, scores")
    demo.add_argument("--out", default="demo_out")
    demo.add_argument("--per-task", type=int, default=2)
    demo.add_argument("--steps", type=int, default=50)
    demo.add_argument("--quick", action="store_true", help="1 puzzle per task, 8 steps (a smoke run)")
    demo.add_argument("--weights", default=None, help="a toy weights .npz instead of the shipped one")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    args.command_line = "cos-jax " + shlex.join(sys.argv[1:] if argv is None else argv)  # as recorded in outputs
    try:
        from cos_jax.parallel import initialize_distributed

        initialize_distributed(args.coordinator, args.num_processes, args.process_id)
        return args.func(args)
    except Exception as err:
        if not is_user_error(err):
            raise  # a bug: keep the traceback
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2


def is_user_error(err: Exception) -> bool:
    """Errors a user's input causes (files, checkpoints, LoRAs, images, configs): one line, exit status 2.

    The library raises these types for bad inputs; anything else is a bug and keeps its traceback."""
    from cos_jax.bench.runner import BenchRunError
    from cos_jax.convert.dit_config import WrongModelKindError
    from cos_jax.convert.dit_keys import KeyMismatchError
    from cos_jax.convert.lora import LoraMismatchError
    from cos_jax.convert.safetensors_io import CorruptCheckpointError
    from cos_jax.errors import UsageError
    from cos_jax.pipelines.images import ImageError

    user = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, BenchRunError,
            WrongModelKindError, KeyMismatchError, LoraMismatchError, CorruptCheckpointError, UsageError,
            ImageError)  # fmt: skip
    return isinstance(err, user)


if __name__ == "__main__":
    sys.exit(main())
