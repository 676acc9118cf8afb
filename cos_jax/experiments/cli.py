"""`cos-jax experiment run | report | merge`."""

from __future__ import annotations

import json
from pathlib import Path


def _run(args) -> int:
    from cos_jax.experiments.config import load_config
    from cos_jax.experiments.runner import dry_run, parse_shard, run

    sets = list(args.set or [])
    if args.model is not None:
        sets.append(f"model={json.dumps(args.model)}")
    config = load_config(args.config, sets)
    if args.dry_run:
        print(json.dumps(dry_run(config), indent=1))
        return 0
    out = Path(args.out or Path("runs") / Path(args.config).parent.name / Path(args.config).stem)
    run(config, out, shard=parse_shard(args.shard), command=args.command_line)
    return 0


def _report(args) -> int:
    from cos_jax.experiments.runner import report

    report(args.out)
    return 0


def _merge(args) -> int:
    from cos_jax.experiments.runner import merge

    merge(args.out, args.shards)
    return 0


def add_commands(sub) -> None:
    exp = sub.add_parser("experiment", help="run the paper's experiments (configs/<model>/<experiment>.toml)")
    cmds = exp.add_subparsers(dest="experiment_command", required=True)
    r = cmds.add_parser("run", help="run or resume one experiment config; writes results.json and a report")
    r.add_argument("config", help="a config file, e.g. configs/toy/perturb.toml")
    r.add_argument(
        "--model",
        help="'toy', 'toy-a14b', a model folder (cos-jax convert output or diffusers layout), "
        "or random:i2v-a14b / random:tiny-i2v-a14b (I2V-A14B-shaped, random weights, no download)",
    )
    r.add_argument("--out", help="output folder (default runs/<model>/<experiment>)")
    r.add_argument("--set", action="extend", nargs="+", metavar="KEY=VALUE", help="override config values")
    r.add_argument("--shard", metavar="I/N", help="run every N-th sweep point from the I-th")
    r.add_argument("--dry-run", action="store_true", help="sweep size, memory plan and time estimate; no sweep")
    r.set_defaults(func=_run)
    p = cmds.add_parser("report", help="rewrite results.json and the report of an output folder")
    p.add_argument("out")
    p.set_defaults(func=_report)
    m = cmds.add_parser("merge", help="join the output folders of --shard runs into OUT and report")
    m.add_argument("out")
    m.add_argument("shards", nargs="+")
    m.set_defaults(func=_merge)
