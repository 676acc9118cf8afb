#!/usr/bin/env bash
# Regenerate the committed toy reports in docs/experiments/toy/ (run on a GPU; each config resumes if killed):
#   bash scripts/toy_experiments.sh [RUNS_DIR]        (default runs/)
# Runs every configs/toy/*.toml with its default settings, then copies results.json, report.md and the figures.
set -euo pipefail
runs=${1:-runs}
for config in configs/toy/*.toml; do
    name=$(basename "$config" .toml)
    extra=()
    [ "$name" = propagation ] && extra=(--set batch=256)  # one call per point on a large GPU
    python3 -m cos_jax.cli experiment run "$config" --out "$runs/toy/$name" "${extra[@]}"
    rm -rf "docs/experiments/toy/$name" && mkdir -p "docs/experiments/toy/$name"
    cp -r "$runs/toy/$name"/{results.json,report.md,figures} "docs/experiments/toy/$name/"
done
