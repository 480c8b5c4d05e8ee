#!/bin/bash
# The same sharded embedding on one machine (e.g. one process per GPU or per socket):
#   deploy/local/shards.sh lfw 4 parts lfw_r50.aifrstore --model r50.pth --arch r50
# Runs the N shards at once, then merges. A failed shard is rerun by running the script again:
# finished pieces are reused, interrupted ones resume.
set -euo pipefail
bench=${1:?usage: shards.sh BENCHMARK N PARTS_DIR STORE EMBED_ARGS…} n=${2:?} parts=${3:?} store=${4:?}
shift 4
mkdir -p "$parts"
pids=()
for ((k = 0; k < n; k++)); do
    aifr-eval embed "$bench" "$@" -q --shard "$k/$n" -o "$parts/$bench-$k-of-$n.aifrstore" &
    pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
if ((failed)); then echo "$failed of $n shards failed; run the script again to retry them" >&2; exit 1; fi
pieces=()
for ((k = 0; k < n; k++)); do pieces+=("$parts/$bench-$k-of-$n.aifrstore"); done
aifr-eval store merge "${pieces[@]}" -o "$store"
