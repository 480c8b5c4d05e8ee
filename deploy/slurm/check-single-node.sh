#!/bin/bash
# Runs the Slurm scripts for real on this machine: installs Debian's Slurm (slurmctld, slurmd,
# munge) when missing, starts a one-node cluster, embeds a small generated LFW-layout benchmark
# as a job array of N shards plus the dependent merge, and checks that the merged store is
# byte-identical to an unsharded embed; then splits a MegaFace run (the demo's FG-NET probes and
# 10,000 distractors) over N array tasks with submit-megaface.sh and checks the merged run
# directory against a single run's. Needs root (it installs packages and starts daemons);
# meant for a throw-away machine or container.
#   deploy/slurm/check-single-node.sh path/to/aifr-eval [N]
set -euo pipefail
exe=$(realpath "${1:?usage: check-single-node.sh AIFR_EVAL_BINARY [SHARDS]}")
shards=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "needs root: it installs slurm-wlm and starts its daemons" >&2; exit 2; }
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurmctld, slurmd and munge (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null 2>&1 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null; }
fi
work=$(mktemp -d /tmp/aifr-slurm-check.XXXXXX)
host=$(hostname -s)
cpus=$(nproc)
mkdir -p /etc/slurm /var/lib/slurm/slurmd /var/lib/slurm/slurmctld /var/log/slurm /run/munge
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=aifrcheck
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=check Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
chown munge:munge /etc/munge/munge.key /run/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed)' && break; sleep 1; done
sinfo

# A tiny LFW layout: 6 people x 2 PNG images (named .jpg, as LFW's are) and weights for the
# deterministic test network built into aifr-eval.
python3 - "$work" <<'PY'
import os, struct, sys, zlib
root = sys.argv[1]
people = ["Ann_Lee", "Bo_Chen", "Cy_Diaz", "Di_Evans", "Ed_Fox", "Flo_Gray"]
def png(w, h, f):
    raw = b"".join(b"\0" + bytes(c for x in range(w) for c in f(x, y)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
for p, name in enumerate(people):
    d = os.path.join(root, "data/lfw/lfw", name)
    os.makedirs(d, exist_ok=True)
    for shot in (1, 2):
        img = png(120, 120, lambda x, y: ((x * (p + 3) + y * shot) % 256, (y * 7 + p * 40) % 256, (x + y) % 256))
        open(os.path.join(d, f"{name}_{shot:04d}.jpg"), "wb").write(img)
pairs = ["2\t3"]
for fold in range(2):
    a, b, c = people[3 * fold: 3 * fold + 3]
    pairs += [f"{a}\t1\t2", f"{b}\t1\t2", f"{c}\t1\t2", f"{a}\t1\t{b}\t1", f"{a}\t2\t{c}\t2", f"{b}\t2\t{c}\t1"]
open(os.path.join(root, "data/lfw/pairs.txt"), "w").write("\n".join(pairs) + "\n")
open(os.path.join(root, "weights.bin"), "wb").write(b"slurm check weights")
PY

cd "$work"
export PATH="$(dirname "$exe"):$PATH"
common=(--data-dir "$work/data" --cache-dir "$work/cache")
aifr-eval embed lfw "${common[@]}" --model weights.bin --arch test-net --batch-size 2 -q -o whole.aifrstore
export AIFR_MODEL=$work/weights.bin AIFR_PARTS=$work/parts AIFR_STORE=$work/merged.aifrstore AIFR_CPUS=1
export AIFR_EMBED_ARGS="--arch test-net --batch-size 2 -q --data-dir $work/data --cache-dir $work/cache"
read -r array merge < <("$here/submit.sh" lfw "$shards")
echo "submitted array $array and merge $merge"
for _ in $(seq 300); do
  [ -z "$(squeue -h -j "$array,$merge" 2>/dev/null)" ] && break
  sleep 1
done
state=$(sacct -n -X -j "$merge" -o State 2>/dev/null | head -1 | tr -d ' ' || true)
cat aifr-merge-*.log 2>/dev/null || true
if [ ! -f merged.aifrstore ]; then
  echo "FAIL: the merge job wrote no store (state: ${state:-unknown}); logs in $work" >&2
  exit 1
fi
if cmp -s whole.aifrstore merged.aifrstore && cmp -s whole.aifrstore.meta.json merged.aifrstore.meta.json; then
  echo "OK: $shards Slurm array tasks + dependent merge = the unsharded store, byte for byte ($work)"
else
  echo "FAIL: the merged store differs from the unsharded one ($work)" >&2
  exit 1
fi

# MegaFace: the demo's FG-NET probes among its 10,000 synthetic distractors, split over the array.
aifr-eval demo --out "$work/demo" >/dev/null
d=$work/demo/data
export AIFR_MEGAFACE_ARGS="--data-dir $d --cache-dir $work/cache --flip none
  --distractors 10,100,1k,10k --embeddings $d/embeddings/fgnet.npy --keys $d/embeddings/fgnet_keys.txt
  --distractor-embeddings $d/megaface/embeddings/distractors.aifrstore"
# shellcheck disable=SC2086 # a list of options
aifr-eval megaface $AIFR_MEGAFACE_ARGS --quiet --out "$work/mf-whole/run"
export AIFR_PARTS=$work/mf-parts AIFR_OUT=$work/mf-merged/run
read -r array merge < <("$here/submit-megaface.sh" "$shards")
echo "submitted megaface array $array and merge $merge"
for _ in $(seq 300); do
  [ -z "$(squeue -h -j "$array,$merge" 2>/dev/null)" ] && break
  sleep 1
done
cat aifr-megaface-merge-*.log 2>/dev/null || true
for f in results.json cmc_curves.json search_outcomes.json report.html; do
  if ! cmp -s "$work/mf-whole/run/$f" "$work/mf-merged/run/$f"; then
    echo "FAIL: the merged MegaFace run's $f differs from the single run's (or is missing; $work)" >&2
    exit 1
  fi
done
echo "OK: $shards Slurm array tasks + dependent megaface merge = the single MegaFace run, byte for byte ($work)"
