#!/usr/bin/env bash
# VBVR-Wan2.2 the way the paper's tools build it: Wan2.2-I2V-A14B (official folder) with the two rank-32
# DiffSynth LoRAs merged at scale 1, high_noise_lora into the high-noise expert and low_noise_lora into the
# low-noise one (reference: paper.md §2.1).
#
# Download:  hf download Wan-AI/Wan2.2-I2V-A14B --local-dir Wan2.2-I2V-A14B
#            hf download Video-Reason/VBVR-Wan2.2-diffsynth --local-dir VBVR-Wan2.2-diffsynth
# Run:       convert/vbvr_wan22_lora.sh [SRC [LORAS [OUT]]]
#            (default SRC Wan2.2-I2V-A14B, LORAS VBVR-Wan2.2-diffsynth, OUT vbvr-wan22)
# Output:    a cos-jax checkpoint folder, about 69 GB (bf16 experts and umT5, fp32 VAE). Any host.
# Checks:    before writing, the plan against expected/vbvr_wan22_lora.json (components, counts, presets,
#            LoRA rank 32 on 400 linear layers per expert); after, every block of both merged experts
#            against diffusers with the same LoRAs merged (exit 1 above 1e-4).
set -euo pipefail
SRC=${1:-Wan2.2-I2V-A14B}
LORAS=${2:-VBVR-Wan2.2-diffsynth}
OUT=${3:-vbvr-wan22}
EXPECT=${EXPECT:-$(dirname "$0")/expected/vbvr_wan22_lora.json}
PAIR=(--lora-high "$LORAS/high_noise_lora.safetensors" --lora-low "$LORAS/low_noise_lora.safetensors")

cos-jax convert "$SRC" "$OUT" "${PAIR[@]}" --expect "$EXPECT"
cos-jax validate "$SRC" --converted "$OUT" "${PAIR[@]}" --stream
