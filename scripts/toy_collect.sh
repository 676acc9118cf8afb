#!/usr/bin/env bash
# Copy what a toy training run has so far into DEST (the device tool's $OUT), within its limits
# (≤ 8 files of 16 MiB): the EMA weights alone (bf16, ~15 MB), the log, curves, summary and evaluation.
#   bash scripts/toy_collect.sh RUN DEST      (run it in every polling command: machines can go back)
set -uo pipefail
run=$1 dest=$2
mkdir -p "$dest"
[ -f "$run/weights.npz" ] && python3 - "$run/weights.npz" "$dest/toy_ema.npz" <<'PY'
import sys, numpy as np
with np.load(sys.argv[1]) as f:
    np.savez_compressed(sys.argv[2], **{k: f[k] for k in f.files if not k.startswith("params/")})
PY
[ -f "$run/log.jsonl" ] && python3 -c "from cos_jax.train.run import plot_curves; plot_curves('$run/log.jsonl', '$dest/curves.png')"
for f in log.jsonl summary.json eval.json eval.md exploration.json train_bench.jsonl; do [ -f "$run/$f" ] && cp "$run/$f" "$dest/"; done
grep '"eval"' "$run/log.jsonl" 2>/dev/null | tail -2 | cut -c1-1500
tail -c 300 "$run/train.log" 2>/dev/null
ls -la "$dest"
