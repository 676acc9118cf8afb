#!/usr/bin/env bash
# Wan2.2-TI2V-5B, official folder: one 5B DiT (48 channels), the Wan2.2 VAE (z 48), umT5
# and its tokenizer.
#
# Download:  hf download Wan-AI/Wan2.2-TI2V-5B --local-dir Wan2.2-TI2V-5B
# Run:       convert/wan22_ti2v_5b.sh [SRC [OUT]]
#            (default SRC Wan2.2-TI2V-5B, OUT wan22-ti2v-5b)
# Output:    a cos-jax checkpoint folder, about 24 GB (bf16 DiT and umT5, fp32 VAE). Any host:
#            conversion streams tensor by tensor, validation runs block by block.
# Checks:    before writing, the plan against expected/wan22_ti2v_5b.json (components, tensor
#            and parameter counts, presets); after, every block of every DiT against diffusers (exit 1
#            above 1e-4).
set -euo pipefail
SRC=${1:-Wan2.2-TI2V-5B}
OUT=${2:-wan22-ti2v-5b}
EXPECT=${EXPECT:-$(dirname "$0")/expected/wan22_ti2v_5b.json}

cos-jax convert "$SRC" "$OUT" --expect "$EXPECT"
cos-jax validate "$SRC" --converted "$OUT" --stream
