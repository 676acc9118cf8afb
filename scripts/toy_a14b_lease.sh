#!/usr/bin/env bash
# scripts/toy_a14b.sh spread over GPU leases whose commands end after 10 minutes (the device tool's):
#   bash scripts/toy_a14b_lease.sh SAVED WORK OUT RANK [SECONDS]
# The first call on a machine copies SAVED (the phases finished on earlier machines: each one's summary.json,
# and the lora.safetensors of the last one of each expert, which the next phase starts from) into WORK and
# starts the recipe there detached; every call then waits up to SECONDS (default 540) and packs each phase
# finished since into OUT/EXPERT_phaseN.tar (lora, log, summary), with WORK/job.log and, at the end,
# WORK/eval.{json,md}. Unpack the tars into SAVED here and call again, on the same machine or a fresh one.
set -uo pipefail
saved=$1 work=$2 out=$3 rank=$4 seconds=${5:-540}
if [ ! -e "$work/job.log" ]; then
    mkdir -p "$work"
    [ -d "$saved" ] && cp -r "$saved/." "$work/"
    for d in "$work"/*/phase*; do [ -e "$d" ] && touch "$work/sent_$(basename "$(dirname "$d")")_$(basename "$d")"; done
    if [ -d .whl ]; then  # diffusers and ftfy, which the device image lacks (carry .whl)
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
    setsid nohup bash scripts/toy_a14b.sh "$work" "$rank" > "$work/job.log" 2>&1 < /dev/null &
fi
for _ in $(seq "$seconds"); do
    [ -e "$work/eval.json" ] && break
    sleep 1
done
for d in "$work"/high/phase* "$work"/low/phase*; do
    expert=$(basename "$(dirname "$d")") phase=$(basename "$d")
    [ -e "$d/summary.json" ] && [ ! -e "$work/sent_${expert}_$phase" ] || continue
    tar cf "$out/${expert}_$phase.tar" -C "$work" "$expert/$phase/lora.safetensors" "$expert/$phase/log.jsonl" \
        "$expert/$phase/summary.json" && touch "$work/sent_${expert}_$phase"
done
cp "$work/job.log" "$work"/eval.* "$out/" 2>/dev/null
tr '\r' '\n' < "$work/job.log" | grep -v '^training:' | tail -4
tr '\r' '\n' < "$work/job.log" | tail -1
