#!/bin/bash
# Queues a sharded embedding on Slurm: N array tasks, then the merge once all succeeded.
#   AIFR_MODEL=r50.pth AIFR_PARTS=/shared/parts AIFR_STORE=/shared/lfw_r50.aifrstore \
#       deploy/slurm/submit.sh lfw 8
# Extra embed options go in AIFR_EMBED_ARGS (e.g. "--arch r50 --data-dir /shared/data"); cores per
# task in AIFR_CPUS (default 8), extra sbatch options (partition, account, GPUs) in AIFR_SBATCH_ARGS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export AIFR_BENCHMARK=${1:?usage: submit.sh BENCHMARK SHARDS} AIFR_SHARDS=${2:?usage: submit.sh BENCHMARK SHARDS}
: "${AIFR_MODEL:?}" "${AIFR_PARTS:?}" "${AIFR_STORE:?}"
# shellcheck disable=SC2086 # AIFR_SBATCH_ARGS is a list of options
array=$(sbatch --parsable --export=ALL --cpus-per-task="${AIFR_CPUS:-8}" ${AIFR_SBATCH_ARGS:-} \
    --array="0-$((AIFR_SHARDS - 1))" "$here/embed-array.sbatch")
# shellcheck disable=SC2086
merge=$(sbatch --parsable --export=ALL --cpus-per-task=1 ${AIFR_SBATCH_ARGS:-} \
    --dependency="afterok:$array" --kill-on-invalid-dep=yes "$here/merge.sbatch")
echo "$array $merge"
echo "embedding: job array $array ($AIFR_SHARDS tasks); merge: job $merge (runs when all tasks succeeded)"
