#!/usr/bin/env bash
# Regenerate the committed toy reports in docs/experiments/ (run on a GPU; each config resumes if killed):
#   bash scripts/toy_experiments.sh [RUNS_DIR [MODEL/NAME ...]]
# Default: every configs/toy/*.toml and the two-expert toy's propagation and exploration (configs/toy_a14b/).
# Runs each config with its default settings (larger batches: one call per point on a large GPU), then copies
# results.json, report.md and the figures. layer_swap also runs its whole-stream control (part=stream) and a
# swap at every step (swap_steps=50).
set -euo pipefail
runs=${1:-runs}
shift || true
names=("$@")
[ ${#names[@]} -eq 0 ] && names=($(for c in configs/toy/*.toml; do echo "toy/$(basename "$c" .toml)"; done)
                                   toy_a14b/propagation toy_a14b/exploration)
run() {  # run MODEL/NAME OUT_NAME [--set ...]
    local config=$1 out=${1%/*}/$2
    shift 2
    python3 -m cos_jax.cli experiment run "configs/$config.toml" --out "$runs/$out" "$@"
    rm -rf "docs/experiments/$out" && mkdir -p "docs/experiments/$out"
    cp -r "$runs/$out"/{results.json,report.md,figures} "docs/experiments/$out/"
}
for name in "${names[@]}"; do
    case $name in
        toy/propagation) run "$name" propagation --set batch=256 ;;
        toy_a14b/propagation) run "$name" propagation --set batch=160 ;;
        toy/token_maps) run "$name" token_maps --set batch=192 ;;
        toy/layer_swap)
            run "$name" layer_swap --set batch=384
            run "$name" layer_swap_stream --set batch=384 part=stream "layers=[0,4,7]"
            run "$name" layer_swap_all_steps --set batch=384 swap_steps=50 ;;
        toy/ensemble) run "$name" ensemble --set batch=576 ;;
        *) run "$name" "${name#*/}" ;;
    esac
done
