#!/usr/bin/env bash
# VBVR-Wan2.2, the full diffusers folder: Wan2.2-I2V-A14B-Diffusers with the VBVR LoRAs
# already merged into both experts (reference: paper.md §2.1).
#
# Download:  hf download Video-Reason/VBVR-Wan2.2 --local-dir VBVR-Wan2.2
# Run:       convert/vbvr_wan22_diffusers.sh [SRC [OUT]]
#            (default SRC VBVR-Wan2.2, OUT vbvr-wan22)
# Output:    a cos-jax checkpoint folder, about 69 GB (bf16 experts and umT5, fp32 VAE). Any host:
#            conversion streams tensor by tensor, validation runs block by block.
# Checks:    before writing, the plan against expected/vbvr_wan22_diffusers.json (components, tensor
#            and parameter counts, presets); after, every block of every DiT against diffusers (exit 1
#            above 1e-4).
set -euo pipefail
SRC=${1:-VBVR-Wan2.2}
OUT=${2:-vbvr-wan22}
EXPECT=${EXPECT:-$(dirname "$0")/expected/vbvr_wan22_diffusers.json}

cos-jax convert "$SRC" "$OUT" --expect "$EXPECT"
cos-jax validate "$SRC" --converted "$OUT" --stream
