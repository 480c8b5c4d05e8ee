#!/bin/bash
# Queues a split MegaFace scan on Slurm: N array tasks, each scoring one slice of the
# distractors, then the merge (which writes the run directory) once all succeeded.
#   AIFR_PARTS=/shared/mf-parts AIFR_OUT=/shared/reports/megaface_fgnet \
#   AIFR_MEGAFACE_ARGS="--distractors 1m --embeddings /shared/fgnet.aifrstore --distractor-embeddings /shared/mf.aifrstore" \
#       deploy/slurm/submit-megaface.sh 8
# Cores per task in AIFR_CPUS (default 8), extra sbatch options in AIFR_SBATCH_ARGS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export AIFR_SHARDS=${1:?usage: submit-megaface.sh SHARDS}
: "${AIFR_PARTS:?}" "${AIFR_OUT:?}" "${AIFR_MEGAFACE_ARGS:?}"
# shellcheck disable=SC2086 # AIFR_SBATCH_ARGS is a list of options
array=$(sbatch --parsable --export=ALL --cpus-per-task="${AIFR_CPUS:-8}" ${AIFR_SBATCH_ARGS:-} \
    --array="0-$((AIFR_SHARDS - 1))" "$here/megaface-array.sbatch")
# shellcheck disable=SC2086
merge=$(sbatch --parsable --export=ALL --cpus-per-task="${AIFR_CPUS:-8}" ${AIFR_SBATCH_ARGS:-} \
    --dependency="afterok:$array" --kill-on-invalid-dep=yes "$here/megaface-merge.sbatch")
echo "$array $merge"
echo "megaface: job array $array ($AIFR_SHARDS slices); merge: job $merge (runs when all slices succeeded)"
