#!/bin/bash
# Queues a sharded embedding on Slurm: N array tasks, then the merge once all succeeded.
#   AIFR_MODEL=r50.pth AIFR_PARTS=/shared/parts AIFR_STORE=/shared/lfw_r50.aifrstore \
#       deploy/slurm/submit.sh lfw 8
# Extra embed options go in AIFR_EMBED_ARGS (e.g. "--arch r50 --data-dir /shared/data").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export AIFR_BENCHMARK=${1:?usage: submit.sh BENCHMARK SHARDS} AIFR_SHARDS=${2:?usage: submit.sh BENCHMARK SHARDS}
: "${AIFR_MODEL:?}" "${AIFR_PARTS:?}" "${AIFR_STORE:?}"
array=$(sbatch --parsable --export=ALL --array="0-$((AIFR_SHARDS - 1))" "$here/embed-array.sbatch")
merge=$(sbatch --parsable --export=ALL --dependency="afterok:$array" --kill-on-invalid-dep=yes "$here/merge.sbatch")
echo "embedding: job array $array ($AIFR_SHARDS tasks); merge: job $merge (runs when all tasks succeeded)"
