#!/usr/bin/env bash
# The two-expert toy (toy-a14b) in one GPU lease: data, the high- and low-noise LoRAs, the held-out report.
#   bash scripts/toy_a14b.sh OUT [BUDGET_PER_EXPERT_S] [RANK] [EXTRA_LORA_ARGS]
# 1. generates the training data (the toy's last mix plus maze_two, difficulties 1-2) on the host CPUs;
# 2. trains the high-noise LoRA on σ ∈ [0.875, 1] and the low-noise one on σ ∈ [0, 0.875] from the shipped
#    toy, each until its time budget (scripts/train_toy_lora.py);
# 3. scores the pair beside the single toy on the same held-out samples and seeds (scripts/eval_toy_pair.py).
# Run it detached (setsid nohup) and poll OUT/job.log; OUT/{high,low}/lora.safetensors and OUT/eval.{json,md}
# are the results.
set -euo pipefail
out=$1 budget=${2:-240} rank=${3:-16} extra=${4:-}
mkdir -p "$out"
python3 scripts/train_toy_lora.py --out "$out/high" --sigma 0,1 --data-cache "$out/data.npz" --prepare-data
for expert in high low; do
    sigma=$([ "$expert" = high ] && echo 0.875,1 || echo 0,0.875)
    python3 scripts/train_toy_lora.py --out "$out/$expert" --sigma "$sigma" --rank "$rank" --steps 100000 \
        --time-budget "$budget" --data-cache "$out/data.npz" $extra
done
python3 scripts/eval_toy_pair.py --loras "$out/high/lora.safetensors" "$out/low/lora.safetensors" \
    --per-task 100 --out "$out/eval.json"
