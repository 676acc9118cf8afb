#!/usr/bin/env bash
# scripts/toy_a14b.sh spread over GPU leases whose commands end after 10 minutes (the device tool's):
#   bash scripts/toy_a14b_lease.sh SAVED WORK OUT RANK [SECONDS]
# The first call on a machine copies SAVED (the phases finished on earlier machines: each one's summary.json,
# and the lora.safetensors of the last one of each expert, which the next phase starts from) into WORK and
# starts the recipe there detached; every call then waits up to SECONDS (default 540) or until the recipe
# ends (WORK/exit holds its exit status), and packs each phase finished since into OUT/EXPERT_phaseN.tar
# (lora, log, summary), with WORK/job.log and, at the end, WORK/eval.{json,md}. Unpack the tars into SAVED
# here and call again, on the same machine or a fresh one.
set -uo pipefail
saved=$1 work=$2 out=$3 rank=$4 seconds=${5:-540}
sent() { echo "$work/sent_$(basename "$(dirname "$1")")_$(basename "$1")"; }  # marks a phase dir as sent
if [ ! -e "$work/job.log" ]; then
    mkdir -p "$work"
    [ -d "$saved" ] && cp -r "$saved/." "$work/"
    for d in "$work"/*/phase*; do [ -e "$d" ] && touch "$(sent "$d")"; done
    source scripts/device_env.sh
    setsid nohup bash -c 'bash scripts/toy_a14b.sh "$0" "$1"; echo $? > "$0/exit"' "$work" "$rank" \
        > "$work/job.log" 2>&1 < /dev/null &
fi
for _ in $(seq "$seconds"); do
    [ -e "$work/exit" ] && break
    sleep 1
done
for d in "$work"/high/phase* "$work"/low/phase*; do
    [ -e "$d/summary.json" ] && [ ! -e "$(sent "$d")" ] || continue
    rel=${d#"$work"/}
    tar cf "$out/${rel/\//_}.tar" -C "$work" "$rel/lora.safetensors" "$rel/log.jsonl" "$rel/summary.json" &&
        touch "$(sent "$d")"
done
cp "$work/job.log" "$work"/eval.* "$out/" 2>/dev/null
[ -e "$work/exit" ] && echo "recipe ended, exit status $(cat "$work/exit")"
tr '\r' '\n' < "$work/job.log" | grep -v '^training:' | tail -4
tr '\r' '\n' < "$work/job.log" | tail -1
