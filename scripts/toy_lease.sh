#!/usr/bin/env bash
# One GPU lease of toy-world training (the device tool's 30-minute machines), as run for the README:
#   bash scripts/toy_lease.sh OUT BUDGET_S COUNTS [INIT] [EXTRA_TRAIN_ARGS]   (e.g. "--lr 2e-4")
# 1. generates the training data in the background (CPU pool) while 2. benchmarking training settings,
# 3. starts scripts/train_toy.py detached (setsid) with the fastest batch, sized so its cosine schedule
# ends at the time budget, then scripts/eval_toy.py (100 held-out seeds per task) and scripts/explore_toy.py on the result. Poll OUT/train.log; OUT/weights.npz, log.jsonl, curves.png appear as it runs.
set -euo pipefail
out=$1 budget=$2 counts=$3 init=${4:-cos_jax/assets/toy/toy_ema.npz} extra=${5:-}
mkdir -p "$out"
python3 scripts/train_toy.py --out "$out" --counts "$counts" --data-cache "$out/data.npz" --prepare-data \
    > "$out/gen.log" 2>&1 &
gen=$!
# settings already benchmarked on this kind of machine can be given as OUT/train_bench.jsonl
[ -s "$out/train_bench.jsonl" ] || python3 scripts/bench_train.py --settings 512:none 1024:dots 1024:full \
    --repeats 15 --out "$out/train_bench.jsonl"
wait $gen
read -r batch remat unroll attention steps eval_every < <(python3 - "$out/train_bench.jsonl" "$budget" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
best = max((r for r in rows if "samples_per_s" in r), key=lambda r: r["samples_per_s"])
steps = int(0.85 * float(sys.argv[2]) * best["samples_per_s"] / best["batch"])
eval_every = max(100, steps // 10 // 100 * 100)
print(best["batch"], best.get("remat", "none"), best.get("scan_unroll", 1), best["attention"], steps, eval_every)
PY
)
echo "training: batch $batch remat $remat unroll $unroll attention $attention steps $steps"
setsid nohup bash -c "python3 scripts/train_toy.py --out $out --counts $counts --data-cache $out/data.npz \
    --init $init --batch $batch --remat $remat --scan-unroll $unroll --attention $attention --steps $steps \
    --warmup 300 --time-budget $budget $extra \
    --eval-every $eval_every && python3 scripts/eval_toy.py --weights $out/weights.npz --out $out/eval.json \
    && python3 scripts/explore_toy.py --weights $out/weights.npz --per-task 32 --out $out/exploration.json" \
    > "$out/train.log" 2>&1 < /dev/null &
