#!/usr/bin/env bash
# Issue 18's full-size runs on one machine of 2 GPUs, as run for benchmarks/multi_gpu_h200.jsonl:
#   setsid nohup bash scripts/multi_gpu_lease.sh OUT STAGE... > OUT/log 2>&1 < /dev/null &
# Stages (each writes OUT/STAGE.done when it ends, its JSON lines to OUT/multi_gpu.jsonl):
#   smoke      a 2-block forward at 720p, context=2 against one GPU (does the split run on these GPUs?)
#   forward    the I2V-A14B expert forward at 720x1280x81, context=2 against one GPU, bf16
#   traj_short an N-step CFG trajectory over both experts at 720p, context=2 (FSDP + all-to-all) against one GPU
#   traj_full  the whole 50-step trajectory at 720p on context=2
#   sweep      a perturb sweep on random full-size I2V-A14B weights (480x480x81, 10 steps, 2 worlds, 5 points:
#              clean and 4 frame points, each computing every step),
#              one GPU against the worlds over data=2 (scripts/bench_sweep.py)
set -uo pipefail
out=$1
shift
mkdir -p "$out"
source scripts/device_env.sh  # the prompt cleaner (ftfy) travels as wheels in .whl/ (carry it)
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.95
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
log="$out/multi_gpu.jsonl" short_steps=${SHORT_STEPS:-6}
for stage in "$@"; do
    echo "== $stage $(date -u +%T)"
    case $stage in
    smoke) python3 scripts/bench_dit.py --preset i2v_a14b --size 720x1280x81 --layers 2 --mesh context=2 --check \
        --repeats 1 ;;
    forward) python3 scripts/bench_dit.py --preset i2v_a14b --size 720x1280x81 --mesh context=2 --check \
        --repeats 3 --out "$log" ;;
    traj_short) python3 scripts/bench_trajectory.py --preset i2v_a14b --size 720x1280x81 --steps "$short_steps" \
        --mesh context=2 --check --out "$log" ;;
    traj_full) python3 scripts/bench_trajectory.py --preset i2v_a14b --size 720x1280x81 --steps 50 \
        --mesh context=2 --out "$log" ;;
    sweep) python3 scripts/bench_sweep.py configs/vbvr_wan22/perturb.toml --model random:i2v-a14b --mesh data=2 \
        --set per_task=2 'tasks=["maze"]' batch=2 steps=10 'noise_steps=[]' 'noise_frames=[0,5,10,15]' \
        'modes=["renoise"]' 'calibrate_modes=[]' vae_precision=tf32 --out "$log" ;;
    *) echo "unknown stage $stage" ;;
    esac
    echo "== $stage ended rc=$? $(date -u +%T)"
    touch "$out/$stage.done"
done
