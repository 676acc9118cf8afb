#!/usr/bin/env bash
# Regenerate the committed toy reports in docs/experiments/toy/ (run on a GPU; each config resumes if killed):
#   bash scripts/toy_experiments.sh [RUNS_DIR [NAME ...]]     (default runs/, every configs/toy/*.toml)
# Runs each config with its default settings (larger batches: one call per point on a large GPU), then copies
# results.json, report.md and the figures. layer_swap also runs its whole-stream control (part=stream) and a swap at every step (swap_steps=50).
set -euo pipefail
runs=${1:-runs}
shift || true
names=("$@")
[ ${#names[@]} -eq 0 ] && names=($(for c in configs/toy/*.toml; do basename "$c" .toml; done))
run() {  # run NAME OUT_NAME [--set ...]
    local name=$1 out=$2
    shift 2
    python3 -m cos_jax.cli experiment run "configs/toy/$name.toml" --out "$runs/toy/$out" "$@"
    rm -rf "docs/experiments/toy/$out" && mkdir -p "docs/experiments/toy/$out"
    cp -r "$runs/toy/$out"/{results.json,report.md,figures} "docs/experiments/toy/$out/"
}
for name in "${names[@]}"; do
    case $name in
        propagation) run "$name" "$name" --set batch=256 ;;
        token_maps) run "$name" "$name" --set batch=192 ;;
        layer_swap)
            run "$name" "$name" --set batch=384
            run "$name" layer_swap_stream --set batch=384 part=stream "layers=[0,4,7]"
            run "$name" layer_swap_all_steps --set batch=384 swap_steps=50 ;;
        ensemble) run "$name" "$name" --set batch=576 ;;
        *) run "$name" "$name" ;;
    esac
done
