#!/usr/bin/env bash
# The two-expert toy (toy-a14b) as shipped: data, the high- and low-noise LoRAs phase by phase, the held-out report.
#   bash scripts/toy_a14b.sh OUT [RANK]
# The phases of benchmarks/toy_a14b/README.md (each a warm start of the one before, with a new optimizer and
# batch seed): on the toy's last mix plus maze_two, high 270 s + 220 s and low 250 s + 330 s; then on the
# maze_two-weighted mix that keeps the other tasks' shares, low 370 s + 250 s and high 240 s + 290 s, and last
# each expert's annealed phase (--anneal: the rate cosine-decays to a tenth over a fixed step count), high 1100
# and low 1400 steps. About 45 minutes of one H200 (scripts/train_toy_lora.py stops the other phases at their
# time budgets, so a slower GPU trains fewer steps there). Run it detached (setsid nohup) and poll OUT/job.log;
# OUT/{high,low}/phase*/lora.safetensors and OUT/eval.{json,md} are the results. A finished phase (its
# summary.json, written at its end) is skipped, so the recipe can be spread over several leases: bring OUT's
# finished phases back and run the same command again.
# scripts/toy_a14b_lease.sh does that on the device tool's 10-minute commands.
set -euo pipefail
out=$1 rank=${2:-16}
balanced=maze_two=44000,maze=16000,permanence=12000,analogy=10000,clock=8000,tictactoe_two=6000,bounce=4000,\
select_next=3000,tictactoe=3000,majority_colour=3000
mkdir -p "$out"
phase() {  # phase EXPERT N BUDGET_S SEED DATA [EXTRA ...]: trains OUT/EXPERT/phaseN from phase N-1
    local expert=$1 n=$2 budget=$3 seed=$4 data=$5 sigma init=()
    shift 5
    [ -e "$out/$expert/phase$n/summary.json" ] && { echo "$expert phase $n: done, skipped"; return; }
    sigma=$([ "$expert" = high ] && echo 0.875,1 || echo 0,0.875)
    [ "$n" -gt 1 ] && init=(--init "$out/$expert/phase$((n - 1))/lora.safetensors")
    python3 scripts/train_toy_lora.py --out "$out/$expert/phase$n" --sigma "$sigma" --rank "$rank" --steps 100000 \
        --time-budget "$budget" --seed "$seed" --data-cache "$out/$data.npz" "${init[@]}" "$@"
}
phase high 1 270 0 data
phase high 2 220 1 data
phase low 1 250 0 data
phase low 2 330 1 data
phase low 3 370 4 data_balanced --counts "$balanced"
phase low 4 250 5 data_balanced --counts "$balanced"
phase high 3 240 6 data_balanced --counts "$balanced"
phase high 4 290 7 data_balanced --counts "$balanced"
phase high 5 400 10 data_balanced --counts "$balanced" --anneal --steps 1100  # the rate decays to a tenth
phase low 5 450 11 data_balanced --counts "$balanced" --anneal --steps 1400
python3 scripts/eval_toy_pair.py --loras "$out/high/phase5/lora.safetensors" "$out/low/phase5/lora.safetensors" \
    --per-task 100 --out "$out/eval.json"
