#!/usr/bin/env bash
# Wan2.2-I2V-A14B, diffusers folder (WanImageToVideoPipeline): transformer/, transformer_2/,
# vae/, text_encoder/, tokenizer/.
#
# Download:  hf download Wan-AI/Wan2.2-I2V-A14B-Diffusers --local-dir Wan2.2-I2V-A14B-Diffusers
# Run:       convert/wan22_i2v_a14b_diffusers.sh [SRC [OUT]]
#            (default SRC Wan2.2-I2V-A14B-Diffusers, OUT wan22-i2v-a14b)
# Output:    a cos-jax checkpoint folder, about 69 GB (bf16 experts and umT5, fp32 VAE). Any host:
#            conversion streams tensor by tensor, validation runs block by block.
# Checks:    before writing, the plan against expected/wan22_i2v_a14b_diffusers.json (components, tensor
#            and parameter counts, presets); after, every block of every DiT against diffusers (exit 1
#            above 1e-4).
set -euo pipefail
SRC=${1:-Wan2.2-I2V-A14B-Diffusers}
OUT=${2:-wan22-i2v-a14b}
EXPECT=${EXPECT:-$(dirname "$0")/expected/wan22_i2v_a14b_diffusers.json}

cos-jax convert "$SRC" "$OUT" --expect "$EXPECT"
cos-jax validate "$SRC" --converted "$OUT" --stream
