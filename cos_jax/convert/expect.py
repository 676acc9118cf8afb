"""What a conversion will produce, summarised from the plan (headers only), and the check of that summary
against an expected manifest such as `convert/expected/<checkpoint>.json` (`cos-jax convert --expect`).

An expected manifest is JSON: `{"components": {name: {field: value}}, "boundary_ratio": r}`. Every component
it lists must be found, no other may be, and each listed field (`kind`, `layout`, `preset`, `tensors`,
`parameters`, `lora_ranks`, `lora_pairs`) must match; keys other than these two are notes for people."""

from __future__ import annotations

import json
import math
import os

from cos_jax.errors import UsageError

CHECKED_FIELDS = ("kind", "layout", "preset", "tensors", "parameters", "lora_ranks", "lora_pairs")


class ExpectationError(UsageError):
    """The checkpoint found is not the one the expected manifest describes."""


def component_summary(job) -> dict:
    """The checked facts of one planned component: kind, layout, preset, source tensors and parameters
    (every source tensor is used exactly once, so these are also the converted model's)."""
    summary = {
        "kind": job.kind.name,
        "layout": job.layout,
        "preset": job.kind.preset(job.config),
        "tensors": len(job.source.infos),
        "parameters": sum(math.prod(info.shape) for info in job.source.infos.values()),
    }
    if job.loras:
        summary["lora_ranks"] = sorted({r for lora in job.loras for r in lora.ranks})
        summary["lora_pairs"] = sum(len(lora.pairs) for lora in job.loras)
    return summary


def read_expected(path: str | os.PathLike) -> dict:
    """An expected manifest; a missing or malformed file is a UsageError naming it."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            expected = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"--expect {path}: no such file; pass one of convert/expected/*.json") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"--expect {path}: not JSON ({err.msg}, line {err.lineno}); fix or regenerate it") from None
    if not isinstance(expected, dict) or not isinstance(expected.get("components"), dict):
        raise UsageError(f"--expect {path}: needs a 'components' object mapping names to expected fields")
    return expected


def check_expected(found: dict[str, dict], boundary_ratio: float | None, expected: dict, where: str) -> None:
    """Raise ExpectationError naming every difference between the planned components `found` (name ->
    component_summary, plus "tokenizer" when it comes along) and the `expected` manifest."""
    want = expected["components"]
    problems = [f"component {n} is missing" for n in want if n not in found]
    problems += [f"unexpected component {n}" for n in found if n not in want]
    for name, fields in want.items():
        if name not in found:
            continue
        for field, value in fields.items():
            if field in CHECKED_FIELDS and found[name].get(field) != value:
                problems.append(f"{name}.{field} is {found[name].get(field)!r}, expected {value!r}")
    if "boundary_ratio" in expected and boundary_ratio != expected["boundary_ratio"]:
        problems.append(f"boundary_ratio is {boundary_ratio!r}, expected {expected['boundary_ratio']!r}")
    if problems:
        raise ExpectationError(
            f"{where}: not the checkpoint the expected manifest describes: {'; '.join(problems)}; check that the "
            "download is complete and is the checkpoint this recipe is for"
        )
